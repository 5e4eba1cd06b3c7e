// Prompts for `retort synth`: a synthetic task's problems, or a JSONL file of {"prompt": ...} objects.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "data/tasks.h"
#include "distill/synth.h"
#include "data/dataset.h"
#include "base/files.h"

void rt_synth_prompts_free(rt_synth_prompts *p) {
    for (size_t i = 0; p->ids && i < p->n; i++) free(p->ids[i]);
    for (size_t i = 0; p->answers && i < p->n; i++) free(p->answers[i]);
    free(p->ids);
    free(p->len);
    free(p->answers);
    memset(p, 0, sizeof *p);
}

// Room for n prompts (answers too when with_answers).
static int alloc_prompts(rt_synth_prompts *p, size_t n, int with_answers, rt_error *err) {
    p->ids = rt_calloc(n ? n : 1, sizeof *p->ids, "prompts", err);
    p->len = rt_calloc(n ? n : 1, sizeof *p->len, "prompts", err);
    p->answers = with_answers ? rt_calloc(n ? n : 1, sizeof *p->answers, "answers", err) : NULL;
    if (!p->ids || !p->len || (with_answers && !p->answers)) return -1;
    return 0;
}

// The tokenizer the prompts are encoded with, and the ids a document starts and ends with.
static int set_tokenizer(rt_synth_prompts *p, const rt_tokenizer *tok, const char *type, const char *hash,
                         rt_error *err) {
    p->tok = tok;
    snprintf(p->tok_type, sizeof p->tok_type, "%s", type);
    snprintf(p->tok_hash, sizeof p->tok_hash, "%s", hash ? hash : "");
    return rt_dataset_doc_ids(tok, &p->start_id, &p->eos_id, err);
}

// The start id + the ids of text[0 .. len) (no special tokens added: the start id is the document's).
static int set_prompt(rt_synth_prompts *p, size_t i, const char *text, size_t len, rt_error *err) {
    rt_tok_ids ids = {0};
    if (rt_tokenizer_encode(p->tok, text, len, 0, &ids, err)) return -1;
    int rc = 0;
    if (ids.n > (size_t)INT32_MAX - 1) rc = rt_fail(err, "prompt %zu is too long", i);
    if (rc == 0 && !(p->ids[i] = rt_malloc((ids.n + 1) * sizeof(int32_t), "prompt", err))) rc = -1;
    if (rc == 0) {
        p->ids[i][0] = p->start_id;
        if (ids.n) memcpy(p->ids[i] + 1, ids.ids, ids.n * sizeof(int32_t));
        p->len[i] = (int32_t)(ids.n + 1);
    }
    rt_tok_ids_free(&ids);
    return rc;
}

int rt_synth_prompts_from_task(const rt_config *cfg, const rt_tokenizer *tok, const char *tok_type,
                               const char *tok_hash, rt_synth_prompts *p, rt_error *err) {
    memset(p, 0, sizeof *p);
    if (strcmp(tok_type, "byte") != 0)
        return rt_fail(
            err,
            "synth.task %s: synthetic tasks are byte-level, but the teacher's tokenizer is %s: give "
            "the prompts as JSONL (synth.prompts)",
            cfg->synth.task, tok_type);
    if (set_tokenizer(p, tok, tok_type, tok_hash, err)) return -1;
    rt_problem *probs = NULL;
    size_t n = (size_t)cfg->synth.n_prompts;
    if (rt_task_problems(cfg->synth.task, n, cfg->synth.split, (uint64_t)cfg->run.seed, &probs, err))
        return rt_fail_wrap(err, "synth.task");
    int rc = alloc_prompts(p, n, 1, err);
    for (size_t i = 0; i < n && rc == 0; i++) {
        p->n = i + 1;
        rc = set_prompt(p, i, probs[i].prompt, strlen(probs[i].prompt), err);
        if (rc == 0 && !(p->answers[i] = rt_strdup(probs[i].answer))) rc = rt_fail(err, "out of memory");
    }
    free(probs);
    if (rc) {
        rt_synth_prompts_free(p);
        return -1;
    }
    snprintf(p->task, sizeof p->task, "%s", cfg->synth.task);
    snprintf(p->split, sizeof p->split, "%s", cfg->synth.split);
    snprintf(p->source, sizeof p->source, "task %s, %zu %s problems, seed %lld", cfg->synth.task, n,
             cfg->synth.split, (long long)cfg->run.seed);
    return 0;
}

// The JSON reader hands decoded values to the callback while it parses the line: keep a copy of "prompt".
typedef struct line_ctx {
    int found;
    char *copy;
    size_t copy_len;
} line_ctx;

static int on_string(const char *key, const char *value, size_t len, void *user) {
    line_ctx *c = user;
    if (strcmp(key, "prompt") != 0) return 0; // other fields (ids, metadata) are not ours
    free(c->copy);
    c->copy = malloc(len + 1);
    if (!c->copy) return -1;
    memcpy(c->copy, value, len);
    c->copy[len] = '\0';
    c->copy_len = len;
    c->found = 1;
    return 0;
}

int rt_synth_prompts_from_jsonl(const char *path, const rt_tokenizer *tok, const char *tok_type,
                                const char *tok_hash, rt_synth_prompts *p, rt_error *err) {
    memset(p, 0, sizeof *p);
    if (set_tokenizer(p, tok, tok_type, tok_hash, err)) return -1;
    char *text = NULL;
    size_t len = 0;
    if (rt_read_file(path, &text, &len, err)) return rt_fail_wrap(err, "synth.prompts");
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    int rc = alloc_prompts(p, lines, 0, err);
    size_t line_no = 0;
    for (size_t pos = 0; pos < len && rc == 0;) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        line_no++;
        size_t s = pos, e = end;
        while (s < e && (text[s] == ' ' || text[s] == '\t' || text[s] == '\r')) s++;
        while (e > s && (text[e - 1] == ' ' || text[e - 1] == '\t' || text[e - 1] == '\r')) e--;
        if (e > s) {
            line_ctx c = {0, NULL, 0};
            char msg[256] = "";
            if (rt_json_object(text + s, e - s, on_string, NULL, &c, msg, sizeof msg))
                rc = rt_fail(err, "%s:%zu: %s", path, line_no, msg[0] ? msg : "out of memory");
            else if (!c.found)
                rc = rt_fail(err, "%s:%zu: the object has no string \"prompt\"", path, line_no);
            else
                rc = set_prompt(p, p->n, c.copy, c.copy_len, err);
            if (rc == 0) p->n++;
            free(c.copy);
        }
        pos = end + 1;
    }
    free(text);
    if (rc == 0 && p->n == 0)
        rc = rt_fail(err, "%s: no prompts (expected one {\"prompt\": ...} per line)", path);
    if (rc) {
        rt_synth_prompts_free(p);
        return -1;
    }
    snprintf(p->task, sizeof p->task, "text");
    snprintf(p->split, sizeof p->split, "all");
    snprintf(p->source, sizeof p->source, "prompts %s (%zu)", path, p->n);
    return 0;
}
