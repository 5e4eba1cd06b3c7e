// Synthetic task corpora: problems with one exact answer, split into train and held-out by a hash of the
// prompt so the two never share a problem.
#include "data/tasks.h"

#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "base/rng.h"
#include "data/tokenizer.h"

typedef void (*make_problem)(rt_rng *r, char *prompt, size_t pcap, char *answer, size_t acap);

static uint64_t below_pow10(rt_rng *r, int digits) {
    uint64_t lo = 1, hi = 10;
    for (int i = 1; i < digits; i++) lo *= 10, hi *= 10;
    if (digits == 1) lo = 0;
    return lo + rt_rng_below(r, hi - lo); // exactly `digits` digits (0..9 for one digit)
}

// A sum of two numbers of 1 to max_digits digits (each width equally likely), written with the prompt and
// answer formats of a task (each takes unsigned long long arguments).
static void make_sum(rt_rng *r, char *p, size_t pc, char *a, size_t ac, int max_digits, const char *prompt,
                     const char *answer) {
    uint64_t x = below_pow10(r, 1 + (int)rt_rng_below(r, (uint64_t)max_digits)),
             y = below_pow10(r, 1 + (int)rt_rng_below(r, (uint64_t)max_digits));
    snprintf(p, pc, prompt, (unsigned long long)x, (unsigned long long)y);
    snprintf(a, ac, answer, (unsigned long long)(x + y));
}

static void make_add(rt_rng *r, char *p, size_t pc, char *a, size_t ac) {
    make_sum(r, p, pc, a, ac, 3, "%llu+%llu=", "%llu");
}

// The add task's problems in words: the fine-tuning demo's new format for a model that knows addition.
static void make_plus(rt_rng *r, char *p, size_t pc, char *a, size_t ac) {
    make_sum(r, p, pc, a, ac, 3, "what is %llu plus %llu? ", "%llu");
}

// The add task's problems at a fixed width: operands zero-padded to 3 digits and the sum to 4, so every
// digit sits at the same position in every document, which a small transformer learns far sooner and more
// reliably than the unpadded add (bench/results/demo_seeds.md). Every addpad document is 14 ids long, so a
// seq_len of 14 or a multiple of it starts each training window at a document.
static void make_addpad(rt_rng *r, char *p, size_t pc, char *a, size_t ac) {
    make_sum(r, p, pc, a, ac, 3, "%03llu+%03llu=", "%04llu");
}

// addpad asked as a question, the fine-tuning demo's new format: the operands keep their spacing, so what
// the adapters learn is the question around them.
static void make_askpad(rt_rng *r, char *p, size_t pc, char *a, size_t ac) {
    make_sum(r, p, pc, a, ac, 3, "what is %03llu+%03llu? ", "%04llu");
}

static void make_add2(rt_rng *r, char *p, size_t pc, char *a, size_t ac) {
    make_sum(r, p, pc, a, ac, 2, "%llu+%llu=", "%llu");
}

static void make_mul(rt_rng *r, char *p, size_t pc, char *a, size_t ac) {
    uint64_t x = below_pow10(r, 1 + (int)rt_rng_below(r, 2)), y = below_pow10(r, 1 + (int)rt_rng_below(r, 2));
    snprintf(p, pc, "%llu*%llu=", (unsigned long long)x, (unsigned long long)y);
    snprintf(a, ac, "%llu", (unsigned long long)(x * y));
}

static void make_arithmetic(rt_rng *r, char *p, size_t pc, char *a, size_t ac) {
    if (rt_rng_below(r, 10) < 7)
        make_add(r, p, pc, a, ac);
    else
        make_mul(r, p, pc, a, ac);
}

static void make_kv(rt_rng *r, char *p, size_t pc, char *a, size_t ac) {
    int n = 3 + (int)rt_rng_below(r, 4);
    char keys[6][3];
    unsigned vals[6];
    for (int i = 0; i < n; i++) {
        int dup;
        do {
            keys[i][0] = (char)('a' + rt_rng_below(r, 26));
            keys[i][1] = (char)('a' + rt_rng_below(r, 26));
            keys[i][2] = '\0';
            dup = 0;
            for (int j = 0; j < i; j++) dup |= strcmp(keys[i], keys[j]) == 0;
        } while (dup);
        vals[i] = (unsigned)rt_rng_below(r, 1000);
    }
    int q = (int)rt_rng_below(r, (uint64_t)n);
    size_t k = 0;
    for (int i = 0; i < n; i++) k += (size_t)snprintf(p + k, pc - k, "%s:%03u ", keys[i], vals[i]);
    snprintf(p + k, pc - k, "?%s=", keys[q]);
    snprintf(a, ac, "%03u", vals[q]);
}

typedef struct task {
    const char *name;
    make_problem make;
    const char *about;
} task;

static const task tasks[] = {
    {"arithmetic", make_arithmetic,
     "70% addition of 1-3 digit numbers, 30% multiplication of 1-2 digit numbers: 47*8=376"},
    {"add", make_add, "addition of 1-3 digit numbers: 305+98=403"},
    {"addpad", make_addpad, "the add task at a fixed width, the demo task: 305+098=0403"},
    {"askpad", make_askpad, "addpad as a question (fine-tuning demo): what is 305+098? 0403"},
    {"add2", make_add2, "addition of 1-2 digit numbers, the quick demo task: 47+8=55"},
    {"plus", make_plus, "the add task in words (fine-tuning demo): what is 305 plus 98? 403"},
    {"kv", make_kv, "key-value recall over 3-6 pairs: ab:123 xq:907 mt:044 ?xq=907"},
};
#define N_TASKS ((int)(sizeof tasks / sizeof tasks[0]))

void rt_task_list(FILE *out) {
    for (int i = 0; i < N_TASKS; i++) fprintf(out, "  %-11s %s\n", tasks[i].name, tasks[i].about);
}

static int is_val(const char *prompt) {
    uint64_t h = 0xcbf29ce484222325ULL; // FNV-1a
    for (const unsigned char *p = (const unsigned char *)prompt; *p; p++) h = (h ^ *p) * 0x100000001b3ULL;
    return h % 10 == 0;
}

int rt_task_problems(const char *task_name, size_t n, const char *split, uint64_t seed, rt_problem **out,
                     rt_error *err) {
    *out = NULL;
    const task *t = NULL;
    for (int i = 0; i < N_TASKS; i++)
        if (strcmp(tasks[i].name, task_name) == 0) t = &tasks[i];
    if (!t)
        return rt_fail(err, "unknown task '%s' (tasks: arithmetic, add, addpad, askpad, add2, plus, kv)",
                       task_name);
    int want_val;
    if (strcmp(split, "val") == 0)
        want_val = 1;
    else if (strcmp(split, "train") == 0)
        want_val = 0;
    else
        return rt_fail(err, "unknown split '%s' (expected train or val)", split);
    if (n == 0 || n > ((size_t)1 << 32))
        return rt_fail(err, "the problem count must be in [1, 2^32], got %zu", n);
    rt_problem *p = rt_calloc(n, sizeof *p, "task problems", err);
    if (!p) return -1;
    rt_rng r;
    rt_rng_seed(&r, rt_seed_mix(seed, 0x73796e7468ULL));
    // The held-out split is a tenth of the problem space; give up rather than loop on a tiny space.
    uint64_t attempts = 0, max_attempts = (uint64_t)n * 200 + 100000;
    for (size_t d = 0; d < n; d++) {
        do {
            if (++attempts > max_attempts) {
                free(p);
                return rt_fail(err, "task %s: could not draw %zu problems of the %s split", t->name, n,
                               split);
            }
            t->make(&r, p[d].prompt, sizeof p[d].prompt, p[d].answer, sizeof p[d].answer);
        } while (is_val(p[d].prompt) != want_val);
    }
    *out = p;
    return 0;
}

int rt_task_write(const char *task_name, size_t n_docs, const char *split, uint64_t seed,
                  const char *out_path, rt_error *err) {
    rt_problem *probs = NULL;
    if (rt_task_problems(task_name, n_docs, split, seed, &probs, err)) return -1;
    // 64 ids per problem: the longest (kv with 6 pairs) takes 53 with BOS and EOS
    size_t cap_tokens, n_off;
    if (!rt_mul_size(n_docs, 64, &cap_tokens) || !rt_add_size(n_docs, 1, &n_off)) {
        free(probs);
        return rt_fail(err, "--n %zu is too large", n_docs);
    }
    int32_t *tokens = rt_malloc(cap_tokens * sizeof(int32_t), "synthetic tokens", err);
    int64_t *offsets = rt_malloc(n_off * sizeof(int64_t), "document offsets", err);
    int32_t *prompt_len = rt_malloc(n_docs * sizeof(int32_t), "prompt lengths", err);
    int rc = tokens && offsets && prompt_len ? 0 : -1;
    size_t k = 0;
    if (rc == 0) offsets[0] = 0;
    for (size_t d = 0; d < n_docs && rc == 0; d++) {
        size_t pl = strlen(probs[d].prompt), al = strlen(probs[d].answer);
        if (k + pl + al + 2 > cap_tokens) {
            rc = rt_fail(err, "task %s: a problem is longer than the 64 ids reserved for it", task_name);
            break;
        }
        tokens[k++] = RT_TOK_BOS;
        k += rt_tok_encode(probs[d].prompt, pl, tokens + k);
        k += rt_tok_encode(probs[d].answer, al, tokens + k);
        tokens[k++] = RT_TOK_EOS;
        offsets[d + 1] = (int64_t)k;
        prompt_len[d] = (int32_t)pl;
    }
    free(probs);
    if (rc == 0) {
        char source[256];
        snprintf(source, sizeof source, "retort data synth --task %s --n %zu --split %s --seed %llu",
                 task_name, n_docs, split, (unsigned long long)seed);
        rt_dataset_spec spec = {.tokens = tokens,
                                .n_tokens = k,
                                .doc_offsets = offsets,
                                .n_docs = n_docs,
                                .prompt_len = prompt_len,
                                .vocab_size = RT_TOK_N_BASE,
                                .task = task_name,
                                .split = split,
                                .seed = (int64_t)seed,
                                .source = source};
        rc = rt_dataset_write(out_path, &spec, err);
    }
    free(tokens);
    free(offsets);
    free(prompt_len);
    return rc;
}
