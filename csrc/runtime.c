#include "runtime.h"

#include <string.h>

#include "checkpoint.h"
#include "finetune.h"

int rt_runtime_ctx_init(rt_ctx *ctx, const char *device, const char *precision, int threads, rt_error *err) {
    const rt_backend *be = &rt_backend_cpu;
    if (strcmp(device, "cuda") == 0 || strcmp(device, "auto") == 0) {
        rt_error why;
        const rt_backend *cuda = rt_backend_cuda();
        if (cuda && rt_cuda_available(&why))
            be = cuda;
        else if (strcmp(device, "cuda") == 0) {
            if (!cuda) return rt_fail(err, "system.device is cuda, but this retort was built without CUDA");
            return rt_fail(err, "system.device is cuda, but no usable GPU: %s", why.msg);
        }
    } else if (strcmp(device, "cpu") != 0) {
        return rt_fail(err, "system.device: unknown device '%s' (expected cpu, cuda or auto)", device);
    }
    rt_dtype act = RT_F32;
    if (strcmp(precision, "bf16") == 0) {
        if (be == &rt_backend_cpu)
            return rt_fail(err, "system.precision bf16 needs the CUDA backend; the CPU trains in fp32");
        act = RT_BF16;
    }
    memset(ctx, 0, sizeof *ctx);
    return be->ctx_init(ctx, act, threads, err);
}

int rt_runtime_parse_ckpt_config(const char *ckpt_path, const char *yaml, rt_config *cfg, rt_error *err) {
    rt_config_defaults(cfg);
    if (!yaml) return rt_fail(err, "%s: checkpoint has no stored config", ckpt_path);
    char name[1100];
    snprintf(name, sizeof name, "%s:/config", ckpt_path);
    if (rt_config_load_string(cfg, yaml, strlen(yaml), name, err)) return -1;
    if (rt_config_validate(cfg, err)) return rt_fail_wrap(err, "%s: stored config", ckpt_path);
    return 0;
}

int rt_runtime_load_model(const char *ckpt_path, rt_ctx *ctx, int B, int T, rt_model *m, rt_config *cfg,
                          rt_error *err) {
    rt_ckpt ck;
    if (rt_ckpt_read(ckpt_path, 0, &ck, err)) return -1;
    int rc = rt_runtime_parse_ckpt_config(ckpt_path, ck.config_yaml, cfg, err);
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
