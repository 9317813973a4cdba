"""_stop.py: stop strings over streamed text.

Text is released as soon as no stop string can still match over it; the text that could be the
start of one is held back. When a stop string matches, the text before the earliest match is
released and the generation ends, unless a longer stop string could still match from an earlier
position: then it waits for more text (stops "abc" and "b" over "ab": "abc" may still come, and it
starts earlier). The answer never holds any part of the stop string.
"""


class StopMatcher:
    def __init__(self, stops):
        self.stops = [s for s in stops if s]
        self.held = ""

    def _partial_from(self, text):
        """The first position whose suffix is a proper prefix of some stop string, or len(text)."""
        for q in range(max(0, len(text) - max(len(s) for s in self.stops) + 1), len(text)):
            tail = text[q:]
            if any(s.startswith(tail) and len(s) > len(tail) for s in self.stops):
                return q
        return len(text)

    def feed(self, piece):
        """Adds `piece`; returns (text to release, stopped)."""
        if not self.stops:
            return piece, False
        text = self.held + piece
        hits = [p for p in (text.find(s) for s in self.stops) if p >= 0]
        first = min(hits) if hits else len(text)
        q = self._partial_from(text)
        if hits and q >= first:  # nothing longer can start before the match
            self.held = ""
            return text[:first], True
        self.held = text[q:]
        return text[:q], False

    def finish(self):
        """At the end of the generation: what is still held, cut at the earliest match."""
        text, self.held = self.held, ""
        hits = [p for p in (text.find(s) for s in self.stops) if p >= 0]
        return text[:min(hits)] if hits else text


def stop_list(stop):
    """stop=None | str | iterable of str, as a list of str."""
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, bytes) or not hasattr(stop, "__iter__"):
        raise TypeError("stop must be a str or a list of str")
    out = list(stop)
    for s in out:
        if not isinstance(s, str):
            raise TypeError("stop must be a str or a list of str, not holding %s" % type(s).__name__)
    return out
