// Loading a checkpoint as a model for inference (load.h).
#include "infer/load.h"

#include "train/checkpoint.h"
#include "train/finetune.h"

int rt_load_model(const char *ckpt_path, rt_ctx *ctx, int B, int T, rt_model *m, rt_config *cfg,
                  rt_error *err) {
    rt_ckpt ck;
    if (rt_ckpt_read(ckpt_path, 0, &ck, err)) return -1;
    int rc = rt_ckpt_parse_config(ckpt_path, ck.config_yaml, cfg, err);
    if (rc == 0 && ck.n_lora > 0) { // an adapter checkpoint: its base, then the adapters
        rc = rt_finetune_load_adapted(ckpt_path, &ck, cfg, ctx, B, T, m, err);
    } else if (rc == 0) {
        rt_model_dims dims = rt_model_dims_from_config(cfg);
        if (T <= 0 || T > dims.T_max) T = dims.T_max;
        rc = rt_model_create(m, &dims, ctx, B, T, 0, err);
        if (rc == 0) {
            rc = rt_model_import_tensors(m, ck.model, ck.n_model, NULL, NULL, 0, ckpt_path, err);
            if (rc) rt_model_free(m);
        }
    }
    rt_ckpt_free(&ck);
    return rc;
}
