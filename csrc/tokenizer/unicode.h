// Unicode support for the tokenizers: UTF-8 decoding and encoding, general-category and White_Space flags,
// and NFC normalization. The property tables (unicode_tables.c) are generated from the Unicode Character
// Database by scripts/gen_unicode_tables.py; the Unicode version is written in that file's header.
#ifndef RT_TOKENIZER_UNICODE_H
#define RT_TOKENIZER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"

// The code point rt_utf8_next reports for a byte that does not start a well-formed UTF-8 sequence. It is
// above U+10FFFF, so it can never be mistaken for a character, and rt_unicode_flags gives it no flags.
#define RT_UTF8_INVALID 0xFFFFFFFFu

// Decodes one code point from s, where len > 0 bytes are available, and returns the bytes consumed (1..4).
// A well-formed sequence (RFC 3629: shortest form, no surrogates, at most U+10FFFF) gives its code point.
// Anything else (a stray continuation byte, a truncated or overlong sequence, an encoded surrogate, a value
// above U+10FFFF, the bytes C0, C1, F5..FF) consumes exactly 1 byte and gives RT_UTF8_INVALID, so a caller
// treats that byte on its own and resynchronizes at the next one. Returns 0 only when len == 0.
size_t rt_utf8_next(const char *s, size_t len, uint32_t *cp);

// Writes the UTF-8 encoding of cp to out and returns its length (1..4); returns 0 (nothing written) for a
// surrogate or a value above U+10FFFF.
int rt_utf8_encode(uint32_t cp, char out[4]);

// Flags of rt_unicode_flags. The first seven are the major general categories (exactly one is set for a
// code point up to U+10FFFF; unassigned code points, surrogates and private use are RT_UC_CONTROL, as \p{C}
// has them). RT_UC_WHITESPACE is the Unicode White_Space property, which is what `\s` matches in the regex
// engines HF tokenizers uses (Oniguruma, and Rust's regex crates).
enum {
    RT_UC_LETTER = 1u << 0,     // L*: \p{L}
    RT_UC_NUMBER = 1u << 1,     // N*: \p{N} (Nd, Nl, No)
    RT_UC_PUNCT = 1u << 2,      // P*: \p{P}
    RT_UC_SYMBOL = 1u << 3,     // S*: \p{S}
    RT_UC_MARK = 1u << 4,       // M*: \p{M}
    RT_UC_SEPARATOR = 1u << 5,  // Z*: \p{Z}
    RT_UC_CONTROL = 1u << 6,    // C*: \p{C} (Cc, Cf, Cs, Co, Cn)
    RT_UC_WHITESPACE = 1u << 7, // White_Space: \s
};

// The RT_UC_* flags of a code point; 0 for RT_UTF8_INVALID or anything above U+10FFFF.
uint32_t rt_unicode_flags(uint32_t cp);

// Canonical combining class (0 for starters and for anything above U+10FFFF).
uint8_t rt_unicode_ccc(uint32_t cp);

// Unicode Normalization Form C of in[0..len): canonical decomposition, canonical ordering of combining marks,
// then canonical composition (composition exclusions respected, Hangul syllables algorithmic). Bytes that
// are not well-formed UTF-8 are copied through unchanged and act as starters that nothing composes with.
// On success *out is a new malloc'd buffer (NUL-terminated for convenience, *out_len excludes the NUL) that
// the caller frees. Returns 0, or -1 with err filled (only on allocation failure or size overflow).
int rt_unicode_nfc(const char *in, size_t len, char **out, size_t *out_len, rt_error *err);

#endif
