/*
 * utf8.c: UTF-8 classification (Unicode 15, Table 3-7 "Well-Formed UTF-8 Byte Sequences") and
 * GPT-2's bytes_to_unicode map used by byte-level BPE vocabularies.
 */
#include "tokenizer/vocab.h"

enum utf8_result utf8_classify(const uint8_t *s, size_t n, size_t *len) {
    uint8_t b0 = s[0];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (b0 < 0x80) {
        *len = 1;
        return UTF8_VALID;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 3;
        if (b0 == 0xE0) lo = 0xA0;      /* no overlong 3-byte forms */
        else if (b0 == 0xED) hi = 0x9F; /* no surrogates */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 4;
        if (b0 == 0xF0) lo = 0x90;      /* no overlong 4-byte forms */
        else if (b0 == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        *len = 1; /* 80..C1 (continuation or overlong lead), F5..FF */
        return UTF8_INVALID;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n) return UTF8_INCOMPLETE;
        uint8_t b = s[i];
        uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) {
            *len = i;
            return UTF8_INVALID;
        }
    }
    *len = need;
    return UTF8_VALID;
}

size_t utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- GPT-2 bytes_to_unicode ------------------------------------------------------------------
 * Bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF are printable and map to the same code point. The
 * remaining 68 bytes (0x00..0x20, 0x7F..0xA0, 0xAD) map to U+0100 + k in increasing byte order, so
 * ' ' (0x20, the 33rd of them) is U+0120 'Ġ' and '\n' is U+010A 'Ċ'. */
static bool byte_is_printable(uint8_t b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

uint32_t bytelevel_cp(uint8_t byte) {
    if (byte_is_printable(byte)) return byte;
    uint32_t k = 0; /* rank of `byte` among the non-printable bytes */
    for (unsigned b = 0; b < byte; b++)
        if (!byte_is_printable((uint8_t)b)) k++;
    return 0x100 + k;
}

size_t bytelevel_utf8(uint8_t byte, char out[2]) {
    char tmp[4];
    size_t n = utf8_encode(bytelevel_cp(byte), tmp);
    out[0] = tmp[0];
    if (n > 1) out[1] = tmp[1];
    return n;
}

int bytelevel_byte(uint32_t cp) {
    if (cp < 0x100) return byte_is_printable((uint8_t)cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    uint32_t k = cp - 0x100;
    for (unsigned b = 0; b < 256; b++) {
        if (byte_is_printable((uint8_t)b)) continue;
        if (k == 0) return (int)b;
        k--;
    }
    return -1;
}
