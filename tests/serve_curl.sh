#!/usr/bin/env bash
# serve_curl.sh: `trit serve` checked over raw HTTP with curl: the exact shapes of its answers, the
# errors, the API key, streaming, embeddings, preemption, a client that leaves, a full queue and shutdown.
# Run by ctest (tests/ctest_serve_curl.cmake, label serve) as
#
#   bash tests/serve_curl.sh BUILD/trit SOURCE_DIR
#
# Servers listen on 127.0.0.1 with --port 0 (the port comes from their one stdout line) and are
# stopped with SIGTERM; every wait has a bound. Four servers: the shipped model (shapes, errors,
# stream, greedy text against `trit run`, metrics), the same with --api-key, the same with a KV pool
# of two blocks (preemption must not change an answer), and synthetic:2b4t (slow enough to leave
# mid-answer, fill the queue and shut down with requests in flight).
set -uo pipefail
command -v curl >/dev/null || { echo "FAIL: serve_curl needs curl (apt-get install curl; tools/setup.sh does)"; exit 1; }
TRIT=$(realpath "$1")
cd "$2"
WORK=$(mktemp -d /tmp/trit-serve-curl-XXXXXX)
PID=""
cleanup() {
    [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
    jobs -p | xargs -r kill 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    [ -f "$WORK/err" ] && { echo "--- server stderr:"; tail -n 40 "$WORK/err"; }
    exit 1
}
pass() { echo "ok: $*"; }

# start ARGS...: a server in the background; sets PID, PORT, URL. Waits for /health 200.
start() {
    : > "$WORK/out"
    "$TRIT" serve "$@" --host 127.0.0.1 --port 0 > "$WORK/out" 2> "$WORK/err" &
    PID=$!
    local line=""
    for _ in $(seq 1 600); do
        line=$(head -n 1 "$WORK/out")
        [ -n "$line" ] && break
        kill -0 "$PID" 2>/dev/null || fail "trit serve $* exited before listening"
        sleep 0.1
    done
    [[ "$line" =~ ^trit\ serve:\ listening\ on\ http://127\.0\.0\.1:([0-9]+)$ ]] || fail "listening line: '$line'"
    PORT=${BASH_REMATCH[1]}
    URL="http://127.0.0.1:$PORT"
    for _ in $(seq 1 600); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")" = 200 ] && return 0
        kill -0 "$PID" 2>/dev/null || fail "trit serve $* exited while loading"
        sleep 0.1
    done
    fail "/health never answered 200"
}

# stop: SIGTERM, exit status 0 within `bound` seconds (default 20).
stop() {
    local bound=${1:-20}
    kill -TERM "$PID"
    for _ in $(seq 1 $((bound * 10))); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$PID" 2>/dev/null && fail "still running $bound s after SIGTERM"
    wait "$PID"
    local rc=$?
    PID=""
    [ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
    grep -q "^trit serve: stopped$" "$WORK/err" || fail "no 'stopped' line"
    [ "$(wc -l < "$WORK/out")" = 1 ] || fail "stdout holds more than the listening line"
}

# req METHOD PATH [BODY [curl args...]]: the body in $WORK/body, headers in $WORK/headers, the
# status in $STATUS.
req() {
    local method=$1 path=$2 body=${3-}
    shift 3 2>/dev/null || shift $#
    if [ -n "$body" ]; then
        STATUS=$(curl -s -X "$method" -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "$@" --data-binary "$body" "$URL$path")
    else
        STATUS=$(curl -s -X "$method" -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "$@" "$URL$path")
    fi
}
expect_status() { [ "$STATUS" = "$1" ] || fail "$2: HTTP $STATUS, expected $1: $(head -c 400 "$WORK/body")"; }
expect_body() { grep -q -- "$1" "$WORK/body" || fail "$2: the body lacks $1: $(head -c 600 "$WORK/body")"; }
expect_header() { grep -qi -- "^$1" "$WORK/headers" || fail "$2: no header $1"; }
# An error in OpenAI's shape, with its status, type and a message holding $3 (check $4).
expect_error() {
    expect_status "$1" "$4"
    expect_body '^{"error":{"message":"' "$4"
    expect_body "\"type\":\"$2\"" "$4"
    expect_body '"param":' "$4"
    expect_body '"code":' "$4"
    expect_body "$3" "$4"
    expect_header "Content-Type: application/json" "$4"
}
# The metric's value from /metrics.
metric() { curl -s "$URL/metrics" | sed -n "s/^$1 //p"; }
# wait_metrics EXPR SECONDS: until the metrics satisfy EXPR (a shell test over $running $waiting $used).
wait_idle() {
    local bound=${1:-10}
    for _ in $(seq 1 $((bound * 10))); do
        local m
        m=$(curl -s "$URL/metrics")
        running=$(sed -n 's/^trit_requests_running //p' <<< "$m")
        waiting=$(sed -n 's/^trit_requests_waiting //p' <<< "$m")
        used=$(sed -n 's/^trit_kv_blocks_used //p' <<< "$m")
        [ "$running" = 0 ] && [ "$waiting" = 0 ] && [ "$used" = 0 ] && return 0
        sleep 0.1
    done
    fail "not idle after $bound s: running $running, waiting $waiting, KV blocks used $used"
}
# The text of the first choice of a completion in $WORK/body (a JSON string, escapes kept).
first_text() { sed -n 's/.*"choices":\[{"index":0,"text":"\(\([^"\\]\|\\.\)*\)".*/\1/p' "$WORK/body"; }

# ---- 1. the shipped model: shapes, errors, streams ------------------------------------------------
start --parallel 4
MODEL=trit-kjv-4m.gguf
req GET /health
expect_status 200 health
[ "$(cat "$WORK/body")" = '{"status":"ok"}' ] || fail "health body: $(cat "$WORK/body")"
req GET /v1/models
expect_status 200 models
[ "$(cat "$WORK/body")" = "{\"object\":\"list\",\"data\":[{\"id\":\"$MODEL\",\"object\":\"model\",\"created\":$(sed -n 's/.*"created":\([0-9]*\).*/\1/p' "$WORK/body"),\"owned_by\":\"trit\"}]}" ] ||
    fail "models body: $(cat "$WORK/body")"
req GET "/v1/models/$MODEL"
expect_status 200 "models/id"
expect_body "^{\"id\":\"$MODEL\",\"object\":\"model\"" "models/id"
req GET /v1/models/gpt-4
expect_error 404 invalid_request_error "does not exist" "models/unknown"
expect_body '"code":"model_not_found"' "models/unknown"
pass "health, models"

# embeddings: the answer's exact shape, its numbers the very text of trit embed's JSON line (%.9g)
req POST /v1/embeddings '{"input":["Jesus wept."],"model":"'$MODEL'"}'
expect_status 200 embeddings
want=$("$TRIT" embed -p "Jesus wept." -t 1 2>/dev/null | sed -n 's/.*"embedding": \[\(.*\)\]}$/\1/p' | sed 's/, /,/g')
[ -n "$want" ] || fail "trit embed printed no vector"
[ "$(cat "$WORK/body")" = "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":[$want]}],\"model\":\"$MODEL\",\"usage\":{\"prompt_tokens\":5,\"total_tokens\":5}}" ] ||
    fail "embeddings body differs from trit embed's vector: $(head -c 300 "$WORK/body")"
req POST /v1/embeddings '{"input":[1,2],"dimensions":255}'
expect_error 400 invalid_request_error "256 dimensions" "embeddings dimensions"
req GET /v1/embeddings
expect_error 405 invalid_request_error "not allowed" "embeddings GET"
expect_header "Allow: POST" "embeddings GET"
pass "embeddings: trit embed's numbers, 400, 405"

PROMPT="In the beginning"
run_text=$("$TRIT" run -p "$PROMPT" -n 24 --temp 0 -t 1 2>/dev/null) || fail "trit run"
req POST /v1/completions "{\"model\":\"$MODEL\",\"prompt\":\"$PROMPT\",\"max_tokens\":24,\"temperature\":0}"
expect_status 200 completion
expect_header "Content-Type: application/json" completion
expect_body '^{"id":"cmpl-[0-9a-f]*","object":"text_completion","created":[0-9]*,"model":"'"$MODEL"'","system_fingerprint":"trit-[0-9.]*","choices":\[{"index":0,"text":"' completion
expect_body '"finish_reason":"length"}\],"usage":{"prompt_tokens":[0-9]*,"completion_tokens":24,"total_tokens":[0-9]*}}$' completion
text=$(first_text)
[ "$PROMPT$(printf '%b' "$text")" = "$run_text" ] || fail "greedy completion '$text' is not what trit run gives: '$run_text'"
pass "completion = trit run (greedy)"

CHAT='{"messages":[{"role":"system","content":"Answer."},{"role":"user","content":"Who was Moses?"}],"max_tokens":16,"temperature":0'
req POST /v1/chat/completions "$CHAT}"
expect_status 200 chat
expect_body '^{"id":"chatcmpl-[0-9a-f]*","object":"chat.completion","created":[0-9]*,"model":"'"$MODEL"'","system_fingerprint":"[^"]*","choices":\[{"index":0,"message":{"role":"assistant","content":"' chat
expect_body '"usage":{"prompt_tokens":[1-9][0-9]*,"completion_tokens":[0-9]*,"total_tokens":[0-9]*}}$' chat
whole=$(sed -n 's/.*"content":"\(\([^"\\]\|\\.\)*\)".*/\1/p' "$WORK/body")
cp "$WORK/body" "$WORK/chat_whole"

req POST /v1/chat/completions "$CHAT,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" -N
expect_status 200 "chat stream"
expect_header "Content-Type: text/event-stream" "chat stream"
# every event is one "data: " line and a blank line
awk 'NR % 2 == 1 && !/^data: / { exit 1 } NR % 2 == 0 && $0 != "" { exit 1 }' "$WORK/body" ||
    fail "chat stream: not data lines and blank lines: $(head -c 600 "$WORK/body")"
[ "$(tail -n 2 "$WORK/body" | head -n 1)" = "data: [DONE]" ] || fail "chat stream: does not end with [DONE]"
head -n 1 "$WORK/body" | grep -q '"object":"chat.completion.chunk".*"choices":\[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}\]}$' ||
    fail "chat stream: first chunk $(head -n 1 "$WORK/body")"
grep -q '"delta":{},"logprobs":null,"finish_reason":"\(stop\|length\)"}\]}$' "$WORK/body" || fail "chat stream: no final chunk"
grep -q '^data: {.*"choices":\[\],"usage":{"prompt_tokens":[0-9]*,"completion_tokens":[0-9]*,"total_tokens":[0-9]*}}$' "$WORK/body" ||
    fail "chat stream: no usage chunk"
streamed=$(sed -n 's/.*"delta":{"content":"\(\([^"\\]\|\\.\)*\)"}.*/\1/p' "$WORK/body" | tr -d '\n')
[ "$streamed" = "$whole" ] || fail "chat stream: '$streamed' streamed, '$whole' whole"
pass "chat, whole and streamed alike"

req POST /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":5,\"stream\":true,\"return_token_ids\":true}" -N
expect_status 200 "completion stream"
# a chunk carries the ids of its text: one token, or several when the server produced them faster
# than this connection took them (a loaded machine); all 5 in all
grep -q '^data: {"id":"cmpl-[0-9a-f]*","object":"text_completion",.*"choices":\[{"index":0,"text":"[^"]*","logprobs":null,"finish_reason":null,"token_ids":\[[0-9]\+\(,[0-9]\+\)*\]}\]}$' "$WORK/body" ||
    fail "completion stream: chunk $(head -n 1 "$WORK/body")"
n_ids=$(sed -n 's/.*"token_ids":\[\([0-9,]*\)\].*/\1/p' "$WORK/body" | tr ',' '\n' | grep -c .)
[ "$n_ids" = 5 ] || fail "completion stream: $n_ids token ids in all, not 5: $(cat "$WORK/body")"
[ "$(tail -n 2 "$WORK/body" | head -n 1)" = "data: [DONE]" ] || fail "completion stream: does not end with [DONE]"
pass "completion stream"

# a stop string that the greedy answer holds: the text ends before it
req POST /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":24,\"temperature\":0,\"stop\":[\"LORD\"]}"
expect_status 200 stop
expect_body '"finish_reason":"stop"' stop
[ "$(printf '%b' "$(first_text)")" = "${run_text#"$PROMPT"}" ] && fail "stop: not cut"
[[ "${run_text#"$PROMPT"}" == "$(printf '%b' "$(first_text)")LORD"* ]] || fail "stop: '$(first_text)' is not the text before LORD"
pass "stop strings"

req POST /v1/completions '{"prompt": "x"'
expect_error 400 invalid_request_error "not valid JSON" "malformed JSON"
req POST /v1/completions '{"prompt":"x","temperature":"hot"}'
expect_error 400 invalid_request_error "'temperature' must be a number" "wrong type"
expect_body '"param":"temperature"' "wrong type"
req POST /v1/completions '{"prompt":"x","max_tokens":300}'
expect_error 400 invalid_request_error "max_tokens is 300: 302 in all, more than the context of 256 tokens" "too long"
req POST /v1/completions '{"prompt":"x","n":5}'
expect_error 400 invalid_request_error "at most 4 sequences" "n > --parallel"
req POST /v1/completions '{"prompt":"x","model":"gpt-4"}'
expect_error 404 invalid_request_error "does not exist" "another model"
expect_body '"code":"model_not_found"' "another model"
req POST /v1/completions '{"prompt":"x","presence_penalty":1}'
expect_error 400 invalid_request_error "not supported" "presence_penalty"
req POST /v1/nothing '{}'
expect_error 404 invalid_request_error "no such path" "unknown path"
req GET /v1/chat/completions
expect_error 405 invalid_request_error "not allowed" "GET on a POST route"
expect_header "Allow: POST" "GET on a POST route"
req DELETE /metrics
expect_error 405 invalid_request_error "not allowed" "DELETE on a GET route"
head -c 1100000 /dev/zero | tr '\0' ' ' > "$WORK/big"
req POST /v1/completions "@$WORK/big"
expect_error 413 invalid_request_error "at most 1048576" "a body over --max-body"
req POST /v1/completions "@$WORK/big" -H "Transfer-Encoding: chunked"
expect_error 413 invalid_request_error "more than 1048576" "a chunked body over --max-body"
pass "errors: 400, 404, 405, 413"

wait_idle 10
req GET /metrics
expect_status 200 metrics
expect_header "Content-Type: text/plain; version=0.0.4" metrics
for name in trit_requests_waiting trit_requests_running trit_kv_blocks_used trit_kv_blocks_total \
    trit_prompt_tokens_total trit_generated_tokens_total; do
    grep -q "^# TYPE $name \(gauge\|counter\)$" "$WORK/body" || fail "metrics: no $name"
    grep -q "^$name [0-9]*$" "$WORK/body" || fail "metrics: no value of $name"
done
for status in ok cancelled rejected error; do
    grep -q "^trit_requests_total{status=\"$status\"} [0-9]*$" "$WORK/body" || fail "metrics: no requests_total $status"
done
for h in trit_time_to_first_token_seconds trit_inter_token_latency_seconds; do
    grep -q "^# TYPE $h histogram$" "$WORK/body" || fail "metrics: no histogram $h"
    grep -q "^${h}_bucket{le=\"+Inf\"} [0-9]*$" "$WORK/body" || fail "metrics: no +Inf bucket of $h"
    grep -q "^${h}_sum [0-9.e+-]*$" "$WORK/body" || fail "metrics: no ${h}_sum"
    grep -q "^${h}_count [0-9]*$" "$WORK/body" || fail "metrics: no ${h}_count"
done
[ "$(sed -n 's/^trit_requests_total{status="ok"} //p' "$WORK/body")" = 5 ] || fail "metrics: requests ok != 5"
[ "$(sed -n 's/^trit_requests_total{status="rejected"} //p' "$WORK/body")" = 9 ] || fail "metrics: rejected != 9 (6 400s and 404s, a 405, two 413s)"
[ "$(sed -n 's/^trit_time_to_first_token_seconds_count //p' "$WORK/body")" = 5 ] || fail "metrics: ttft count != 5"
pass "metrics"
stop

# ---- 2. the API key -------------------------------------------------------------------------------
TRIT_API_KEY=from-env start --parallel 2
req GET /v1/models
expect_error 401 authentication_error "API key" "no key"
expect_header "WWW-Authenticate: Bearer" "no key"
req GET /v1/models "" -H "Authorization: Bearer wrong"
expect_error 401 authentication_error "API key" "a wrong key"
req POST /v1/completions '{"prompt":"x","max_tokens":2}' -H "Authorization: Bearer from-en"
expect_error 401 authentication_error "API key" "a prefix of the key"
req GET /v1/models "" -H "Authorization: Bearer from-env"
expect_status 200 "the key from TRIT_API_KEY"
req GET /health
expect_status 200 "health needs no key"
stop
start --parallel 2 --api-key sekrit
req POST /v1/completions '{"prompt":"x","max_tokens":2}' -H "Authorization: Bearer sekrit"
expect_status 200 "--api-key"
req GET /metrics
expect_error 401 authentication_error "API key" "metrics without the key"
stop
pass "API key"

# ---- 3. a pool of two blocks: preemption leaves every answer as it is alone ------------------------------
start --parallel 3 --kv-tokens 128
for i in 1 2 3; do
    req POST /v1/completions "{\"prompt\":\"$PROMPT $i\",\"max_tokens\":100,\"seed\":$i,\"ignore_eos\":true,\"return_token_ids\":true}"
    expect_status 200 "alone $i"
    sed -n 's/.*"token_ids":\(\[[0-9,]*\]\).*/\1/p' "$WORK/body" > "$WORK/alone$i"
done
clients=()
for i in 1 2 3; do
    curl -s "$URL/v1/completions" -o "$WORK/together$i" \
        -d "{\"prompt\":\"$PROMPT $i\",\"max_tokens\":100,\"seed\":$i,\"ignore_eos\":true,\"return_token_ids\":true}" &
    clients+=($!)
done
wait "${clients[@]}"
for i in 1 2 3; do
    [ "$(sed -n 's/.*"token_ids":\(\[[0-9,]*\]\).*/\1/p' "$WORK/together$i")" = "$(cat "$WORK/alone$i")" ] ||
        fail "request $i: another answer together than alone"
done
[ "$(metric trit_preemptions_total)" -gt 0 ] || fail "no preemption happened (the test needs one)"
wait_idle 10
stop
pass "preemption: three answers unchanged"

# ---- 4. synthetic:2b4t (~0.2 s a token here): a client that leaves, a full queue, shutdown -----------
start -m synthetic:2b4t -c 256 -b 256 --parallel 2 --queue 1 --shutdown-timeout 1
IDS='"prompt":[1,2,3,4,5]'
# a stream read until its first token event, then closed
: > "$WORK/left"
curl -s -N -o "$WORK/left" "$URL/v1/completions" -d "{$IDS,\"max_tokens\":200,\"stream\":true}" &
client=$!
for _ in $(seq 1 600); do
    grep -q '^data: ' "$WORK/left" && break
    sleep 0.1
done
grep -q '^data: ' "$WORK/left" || fail "leave mid-stream: no event in 60 s"
kill "$client"
wait "$client" 2>/dev/null
grep -q '\[DONE\]' "$WORK/left" && fail "leave mid-stream: the answer was not cut"
wait_idle 30
# a whole answer left while it is generated (after its first token)
generated=$(metric trit_generated_tokens_total)
curl -s -o /dev/null "$URL/v1/completions" -d "{$IDS,\"max_tokens\":200}" &
client=$!
for _ in $(seq 1 600); do
    [ "$(metric trit_generated_tokens_total)" -gt "$generated" ] && break
    sleep 0.1
done
kill "$client"
wait "$client" 2>/dev/null
wait_idle 30
[ "$(metric 'trit_requests_total{status="cancelled"}')" = 2 ] || fail "two requests whose client left are not 2 cancelled"
pass "a client that leaves frees its sequence (stream and whole)"

# an embeddings client that leaves: the request is cancelled between two inputs (40 of 200 ids)
inputs=$(printf '[%s1],' $(for _ in $(seq 1 199); do printf '7,'; done | sed 's/.*/& /') | head -c -1)
inputs=$(for _ in $(seq 1 40); do printf '%s,' "$inputs"; done | head -c -1)
curl -s -o /dev/null --max-time 1 "$URL/v1/embeddings" -d "{\"input\":[$inputs]}"
for _ in $(seq 1 300); do
    [ "$(metric 'trit_embedding_requests_total{status="cancelled"}')" = 1 ] && break
    sleep 0.1
done
[ "$(metric 'trit_embedding_requests_total{status="cancelled"}')" = 1 ] || fail "an embeddings request whose client left is not cancelled"
wait_idle 30
pass "an embeddings client that leaves is cancelled"

# q1 streams, q2 and q3 wait whole: two run, one waits; a fourth finds the queue full
curl -s -N -o "$WORK/q1" "$URL/v1/completions" -d "{$IDS,\"max_tokens\":200,\"stream\":true}" &
clients=($!)
for i in 2 3; do
    curl -s -o "$WORK/q$i" "$URL/v1/completions" -d "{$IDS,\"max_tokens\":200}" &
    clients+=($!)
done
for _ in $(seq 1 100); do
    [ "$(metric trit_requests_running)" = 2 ] && [ "$(metric trit_requests_waiting)" = 1 ] && break
    sleep 0.1
done
req POST /v1/completions "{$IDS,\"max_tokens\":2}"
expect_error 429 server_busy "queue" "a full queue"
expect_header "Retry-After: 1" "a full queue"
pass "a full queue: 429 with Retry-After"

# SIGTERM with the three in flight: --shutdown-timeout 1, then they are cancelled; exit 0
stop 15
grep -q "^trit serve: cancelling 3 requests$" "$WORK/err" || fail "shutdown: no 'cancelling 3 requests' line"
wait "${clients[@]}"
grep -q '\[DONE\]' "$WORK/q1" && fail "shutdown: a cancelled stream ended with [DONE]"
for i in 2 3; do
    grep -q '^{"error":{"message":"the server is shutting down"' "$WORK/q$i" || fail "shutdown: q$i got $(head -c 300 "$WORK/q$i")"
done
pass "shutdown: in-flight requests cancelled after --shutdown-timeout, exit 0"
echo "all passed"
