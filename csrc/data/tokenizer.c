// Byte-level tokenizer: every byte is its own id; BOS, EOS and PAD follow.
#include "data/tokenizer.h"

#include <stdio.h>

size_t rt_tok_encode(const char *text, size_t len, int32_t *out) {
    for (size_t i = 0; i < len; i++) out[i] = (unsigned char)text[i];
    return len;
}

size_t rt_tok_decode(const int32_t *ids, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < 256) out[k++] = (char)ids[i];
    out[k] = '\0';
    return k;
}

const char *rt_tok_piece(int32_t id, char buf[16]) {
    switch (id) {
    case RT_TOK_BOS:
        return "<bos>";
    case RT_TOK_EOS:
        return "<eos>";
    case RT_TOK_PAD:
        return "<pad>";
    case '\n':
        return "\\n";
    case '\t':
        return "\\t";
    case '\\':
        return "\\\\";
    default:
        break;
    }
    if (id >= 0x20 && id < 0x7f)
        snprintf(buf, 16, "%c", (char)id);
    else if (id >= 0 && id < 256)
        snprintf(buf, 16, "\\x%02x", (unsigned)id);
    else
        snprintf(buf, 16, "<%d>", (int)id);
    return buf;
}

// UTF-8 of GPT-2's bytes_to_unicode(b): printable bytes map to themselves, the other 68 to U+0100 + n in
// order.
void rt_tok_byte_unicode(int b, char out[4]) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    unsigned cp = (unsigned)b;
    if (!printable) {
        int n = 0;
        for (int x = 0; x < b; x++)
            n += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF));
        cp = 256u + (unsigned)n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = '\0';
    }
}
