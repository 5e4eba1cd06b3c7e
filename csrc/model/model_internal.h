// Shared by the model's files (model.c, model_lora.c): device allocation with memory accounting, and the
// linear layers every projection goes through.
#ifndef RT_MODEL_INTERNAL_H
#define RT_MODEL_INTERNAL_H

#include "model/model.h"

typedef enum alloc_kind { ALLOC_ACTS = 0, ALLOC_PARAMS, ALLOC_BASE } alloc_kind;

typedef struct alloc_state {
    rt_model *m;
    rt_error *err;
    int failed;
    alloc_kind kind; // what weight allocations count as: trainable parameters or the frozen base
} alloc_state;

// n_elems x elem_size bytes of zeroed device memory, counted in m->memory by `what` ("gradient",
// "AdamW ...") or by a->kind. NULL (and a->failed set) on failure.
void *rt_model_dev_alloc(alloc_state *a, size_t n_elems, size_t elem_size, const char *what);

// arena.c
// Lays out the trainable weights of a training model in m->arena for m->dp and allocates the arenas.
void rt_model_alloc_arena(rt_model *m, alloc_state *a);
void rt_model_free_arena(rt_model *m);

// model.c
// Host weights (p->n fp32) of a weight with a master: into the master (only the part inside this rank's
// shard when the masters are sharded) and its compute copy.
void rt_model_set_weight(rt_model *m, rt_param *p, const float *host);

// model_lora.c
// Index of the base weight of a site (layer l; l is ignored for the head).
int rt_model_site_weight(const rt_model *m, int l, rt_lora_site site);
// Index of the bias of a site (layer l), -1 when it has none (only q, k and v have them, with attn_bias).
int rt_model_site_bias(const rt_model *m, int l, rt_lora_site site);
// Adds the adapter parameters of the spec's targets (after the base parameters).
void rt_model_define_adapters(rt_model *m);
// Whether param i is stored in NF4 under the spec (a frozen block projection of an NF4 site).
int rt_model_param_is_nf4(const rt_model *m, int i);
// Adapter activations and scratch for batches of B_max x T_max_batch, and the NF4 dequant buffer.
void rt_model_alloc_lora(rt_model *m, alloc_state *a);
void rt_model_free_lora(rt_model *m);
// The NF4 buffers of param p (n weights).
void rt_model_alloc_nf4(rt_model *m, alloc_state *a, rt_param *p);
// Quantize host weights w[p->n] and upload them into p's NF4 buffers.
int rt_model_upload_nf4(rt_model *m, rt_param *p, const float *w, rt_error *err);

// The projections of sites site .. site + n_sites - 1 of layer l as one linear layer (n_sites 3 for the
// fused q, k, v; 2 for gate, up; 1 for the others): W is their weights stacked, [out, in] with out the sum
// of theirs. out [N, out] = x [N, in] @ W^T (+ bias), then each site's adapter adds
// scale * (x A^T) B^T into its columns of out. Dequantizes NF4 weights into m->wtmp first.
void rt_model_linear_forward(rt_model *m, int l, rt_lora_site site, int n_sites, void *out, const void *x,
                             int N);
// Backward of the same: one dW += dy^T x and dbias += column sums of dy when they train, one dx [N, in] =
// dy W, then each adapter's dA and dB from its columns of dy and its path into dx; dx_beta 1 accumulates into
// dx, 0 overwrites it.
void rt_model_linear_backward(rt_model *m, int l, rt_lora_site site, int n_sites, void *dx, float dx_beta,
                              const void *dy, const void *x, int N);

#endif
