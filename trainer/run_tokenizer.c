// The tokenizer of a training run (train_run.h): where it comes from, and the checks that keep a model, its
// data and its checkpoints on one tokenizer (docs/tokenizers.md, How a tokenizer travels).
#include <stdio.h>
#include <string.h>

#include "train_run.h"

int rt_run_tokenizer_setup(train_run *r, rt_error *err) {
    const rt_config *c = &r->cfg;
    const char *what = r->finetune ? "finetune.base" : "model.tokenizer";
    if (r->finetune) { // the base's stored tokenizer, whatever its config's model.tokenizer said
        if (rt_tok_source_copy(&r->tok, &r->base.tokenizer, err)) return -1;
    } else if (rt_tok_source_load(c->model.tokenizer, &r->tok, NULL, err)) {
        return rt_fail_wrap(err, "model.tokenizer");
    }
    if (strcmp(r->tok.type, "byte") == 0) r->tok.vocab_size = c->model.vocab_size;
    if (rt_tok_source_check_vocab(&r->tok, c->model.vocab_size, what, err)) return -1;
    if (r->comm.rank == 0 && strcmp(r->tok.type, "byte") != 0)
        fprintf(stderr, "tokenizer: %s, %d ids (%s, hash %s) from %s\n", r->tok.type, r->tok.vocab_size,
                r->tok.format, r->tok.hash, r->finetune ? r->base_path : c->model.tokenizer);
    return 0;
}

int rt_run_check_data_tokenizer(const train_run *r, rt_error *err) {
    if (rt_dataset_check_tokenizer(&r->train_ds, r->tok.type, r->tok.hash, "data.train", err)) return -1;
    if (r->has_val && rt_dataset_check_tokenizer(&r->val_ds, r->tok.type, r->tok.hash, "data.val", err))
        return -1;
    return 0;
}

int rt_run_check_resume_tokenizer(const train_run *r, const rt_ckpt *ck, const char *path, rt_error *err) {
    if (rt_tok_source_same(&ck->tokenizer, &r->tok)) return 0;
    char a[64], b[64];
    return rt_fail(err, "%s stores the tokenizer %s, but this run's is %s: resume needs the same tokenizer",
                   path, rt_tok_describe(ck->tokenizer.type, ck->tokenizer.hash, a),
                   rt_tok_describe(r->tok.type, r->tok.hash, b));
}
