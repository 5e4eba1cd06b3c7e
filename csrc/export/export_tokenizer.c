// Tokenizer files of folder exports (export_tokenizer.h).
#include "export/export_tokenizer.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "data/tokenizer.h"
#include "export/export_folder.h"
#include "tokenizer/tokenizer_json_write.h"

int rt_export_has_real_tokenizer(const rt_tok_source *src) {
    return src && src->type[0] && strcmp(src->type, "byte") != 0;
}

// A JSON string literal of the bytes s[0 .. len) (UTF-8 kept, control characters escaped).
static void json_bytes(rt_buf *b, const char *s, size_t len) {
    rt_buf_append(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            rt_buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            rt_buf_printf(b, "\\u%04x", c);
        else
            rt_buf_append(b, &s[i], 1);
    }
    rt_buf_append(b, "\"", 1);
}

// "key": "<text of id>" or null.
static void special_entry(rt_buf *b, const char *key, const rt_tokenizer *t, int32_t id) {
    size_t len = 0;
    const char *text = id >= 0 ? rt_tokenizer_token(t, id, &len) : NULL;
    rt_buf_printf(b, "\"%s\": ", key);
    if (text)
        json_bytes(b, text, len);
    else
        rt_buf_printf(b, "null");
}

// The special tokens as "key": value pairs, each preceded by sep.
static void special_entries(rt_buf *b, const rt_tokenizer *t, int with_unk, const char *sep) {
    const char *keys[4] = {"bos_token", "eos_token", "pad_token", "unk_token"};
    int32_t ids[4] = {rt_tokenizer_bos(t), rt_tokenizer_eos(t), rt_tokenizer_pad(t), rt_tokenizer_unk(t)};
    for (int k = 0; k < (with_unk ? 4 : 3); k++) {
        rt_buf_printf(b, "%s", k ? sep : "");
        special_entry(b, keys[k], t, ids[k]);
    }
}

static void tokenizer_config_json(rt_buf *b, const rt_tokenizer *t, int max_len) {
    rt_buf_printf(b,
                  "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"add_bos_token\": %s,\n"
                  "  \"add_eos_token\": %s,\n  ",
                  rt_tokenizer_adds_bos(t) ? "true" : "false", rt_tokenizer_adds_eos(t) ? "true" : "false");
    special_entries(b, t, 1, ",\n  ");
    rt_buf_printf(b, ",\n  \"clean_up_tokenization_spaces\": false,\n  \"model_max_length\": %d\n}\n",
                  max_len);
}

static void special_tokens_map_json(rt_buf *b, const rt_tokenizer *t) {
    rt_buf_printf(b, "{");
    special_entries(b, t, 0, ", ");
    rt_buf_printf(b, "}\n");
}

int rt_export_tokenizer_files(const char *dir, const rt_tokenizer *tok, const rt_tok_source *src, int max_len,
                              uint64_t *total, rt_error *err) {
    static const char *const names[3] = {"tokenizer.json", "tokenizer_config.json",
                                         "special_tokens_map.json"};
    int rc = 0;
    for (int k = 0; rc == 0 && k < 3; k++) {
        rt_buf b = {0};
        // a tokenizer.json source as it is; one from a GGUF file written from the tokenizer
        if (k == 0 && strcmp(src->format, RT_TOK_FORMAT_JSON) == 0)
            rt_buf_append(&b, src->bytes, src->len);
        else if (k == 0 && rt_tokenizer_to_json(tok, &b, err))
            rc = -1;
        if (k == 1) tokenizer_config_json(&b, tok, max_len);
        if (k == 2) special_tokens_map_json(&b, tok);
        if (rc == 0) rc = rt_export_text_file(dir, names[k], &b, total, err);
        rt_buf_free(&b);
    }
    return rc;
}

// ---- the byte tokenizer

static const char *special_name(int id, char buf[24]) {
    if (id == RT_TOK_BOS) return "<s>";
    if (id == RT_TOK_EOS) return "</s>";
    if (id == RT_TOK_PAD) return "<pad>";
    snprintf(buf, 24, "<unused_%d>", id);
    return buf;
}

static void added_token(rt_buf *b, int id, int with_id) {
    char buf[24];
    rt_buf_append(b, "{", 1);
    if (with_id) rt_buf_printf(b, "\"id\": %d, ", id);
    rt_buf_printf(b,
                  "\"content\": \"%s\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, "
                  "\"normalized\": false, \"special\": true}",
                  special_name(id, buf));
}

// retort's byte tokenizer as HF tokenizers reads it: a GPT-2 byte-level BPE with no merges and no regex
// split, so token b is byte b and the ids are exactly retort's; 256 <s> (added first by the template), 257
// </s>, 258 <pad> and the model's further ids as special added tokens.
static void byte_tokenizer_json(rt_buf *b, int V) {
    rt_buf_printf(
        b,
        "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [");
    for (int id = 256; id < V; id++) {
        rt_buf_printf(b, "%s\n    ", id > 256 ? "," : "");
        added_token(b, id, 1);
    }
    rt_buf_printf(
        b,
        "\n  ],\n  \"normalizer\": null,\n"
        "  \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "
        "\"use_regex\": false},\n");
    rt_buf_printf(
        b,
        "  \"post_processor\": {\"type\": \"TemplateProcessing\", "
        "\"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", "
        "\"type_id\": 0}}], ");
    rt_buf_printf(
        b, "\"pair\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", "
           "\"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 1}}, {\"Sequence\": {\"id\": "
           "\"B\", \"type_id\": 1}}], ");
    rt_buf_printf(
        b, "\"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [%d], \"tokens\": [\"<s>\"]}}},\n",
        RT_TOK_BOS);
    rt_buf_printf(
        b, "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, "
           "\"use_regex\": true},\n");
    rt_buf_printf(b, "  \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
                     "\"continuing_subword_prefix\": "
                     "null, \"end_of_word_suffix\": null, \"fuse_unk\": false, \"byte_fallback\": false, "
                     "\"ignore_merges\": false,\n    \"vocab\": {");
    char piece[24];
    for (int id = 0; id < V; id++) {
        if (id < 256) {
            rt_tok_byte_unicode(id, piece);
            rt_buf_printf(b, "%s", id ? ", " : "");
            json_bytes(b, piece, strlen(piece));
        } else {
            rt_buf_printf(b, ", \"%s\"", special_name(id, piece));
        }
        rt_buf_printf(b, ": %d", id);
    }
    rt_buf_printf(b, "},\n    \"merges\": []\n  }\n}\n");
}

// split_special_tokens: retort's byte tokenizer reads "<s>" written in a text as its three bytes (only the
// template adds BOS), so transformers must not match the added tokens in text either.
static void byte_tokenizer_config_json(rt_buf *b, int max_len) {
    rt_buf_printf(
        b,
        "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"add_bos_token\": true,\n"
        "  \"add_eos_token\": false,\n  \"bos_token\": \"<s>\",\n  \"eos_token\": \"</s>\",\n"
        "  \"pad_token\": \"<pad>\",\n  \"unk_token\": null,\n  \"clean_up_tokenization_spaces\": false,\n"
        "  \"split_special_tokens\": true,\n  \"model_max_length\": %d,\n  \"added_tokens_decoder\": {",
        max_len);
    for (int id = 256; id < RT_TOK_N_BASE; id++) {
        rt_buf_printf(b, "%s\n    \"%d\": ", id > 256 ? "," : "", id);
        added_token(b, id, 0);
    }
    rt_buf_printf(b, "\n  }\n}\n");
}

static int byte_tokenizer_files(const char *dir, int vocab_size, int max_len, uint64_t *total,
                                rt_error *err) {
    static const char *const names[3] = {"tokenizer.json", "tokenizer_config.json",
                                         "special_tokens_map.json"};
    int rc = 0;
    for (int k = 0; rc == 0 && k < 3; k++) {
        rt_buf b = {0};
        if (k == 0) byte_tokenizer_json(&b, vocab_size);
        if (k == 1) byte_tokenizer_config_json(&b, max_len);
        if (k == 2)
            rt_buf_printf(&b,
                          "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"pad_token\": \"<pad>\"}\n");
        rc = rt_export_text_file(dir, names[k], &b, total, err);
        rt_buf_free(&b);
    }
    return rc;
}

int rt_export_tokenizer_folder_files(const char *dir, const rt_tokenizer *tok, const rt_tok_source *src,
                                     int vocab_size, int max_len, uint64_t *total, rt_error *err) {
    if (tok && rt_export_has_real_tokenizer(src))
        return rt_export_tokenizer_files(dir, tok, src, max_len, total, err);
    return byte_tokenizer_files(dir, vocab_size, max_len, total, err);
}

void rt_export_special_ids(const rt_tokenizer *tok, int *bos, int *eos, int *pad) {
    int e = rt_tokenizer_eos(tok), b = rt_tokenizer_bos(tok), p = rt_tokenizer_pad(tok);
    *eos = e;
    *bos = b >= 0 ? b : e;
    *pad = p >= 0 ? p : e;
}
