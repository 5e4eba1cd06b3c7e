// `retort import gguf`: a llama.cpp model file (architecture llama or qwen2) as an ordinary retort
// checkpoint: every tensor dequantized to fp32 under retort's names (which are GGUF's), the q/k rows of llama
// files put back into the rotate-half order retort's RoPE uses, a full resolved config whose model.* keys
// come from the file's hyperparameters, step 0, no optimizer state. docs/import.md says what is read and what
// is refused.
#ifndef RT_GGUF_IMPORT_H
#define RT_GGUF_IMPORT_H

#include <stddef.h>

#include "base/common.h"
#include "base/named_tensor.h"
#include "config/config.h"
#include "gguf/gguf.h"
#include "model/rope_scaling.h"

typedef struct rt_gguf_import_opts {
    int max_seq_len; // 0: the file's context_length; else a shorter context (less memory)
} rt_gguf_import_opts;

typedef struct rt_gguf_import_report {
    char arch[16];        // general.architecture
    int n_tensors;        // written to the checkpoint
    size_t n_params;      // their elements
    size_t n_by_type[40]; // elements read from each ggml type (index: the type id)
    int context_length;   // the file's
    int tied;             // no output.weight: the head is the embedding
    int unpermuted;       // llama: the q/k rows were permuted back to retort's order
    int rope_freqs;       // rope_freqs.weight was read as llama3 scaling
    char tokenizer[16];   // tokenizer.ggml.model ("" when absent)
    int tokenizer_stored; // the checkpoint stores the file's tokenizer (else the byte record and a note)
    int bos_id, eos_id;   // tokenizer.ggml.bos/eos_token_id, -1 when absent
    int pad_id;           // tokenizer.ggml.padding_token_id, -1 when absent
} rt_gguf_import_report;

// The weights and config of an open GGUF file: checks every hyperparameter and tensor (presence, shape,
// type, nothing left over) before dequantizing anything. On success *ts holds *n tensors the caller frees
// with rt_gguf_import_free; cfg is validated.
int rt_gguf_import_model(const rt_gguf_file *f, const char *path, const rt_gguf_import_opts *opts,
                         rt_config *cfg, rt_named_tensor **ts, int *n, rt_gguf_import_report *rep,
                         rt_error *err);
void rt_gguf_import_free(rt_named_tensor *ts, int n);

// Read path and write the checkpoint out (atomically).
int rt_gguf_import(const char *path, const char *out, const rt_gguf_import_opts *opts,
                   rt_gguf_import_report *rep, rt_error *err);

// llama.cpp files store Llama 3.1's RoPE scaling only as the per-pair factors of rope_freqs.weight
// (factors[i] = unscaled / scaled inverse frequency of pair i, i < D/2). Finds llama3 parameters that give
// these factors for a head of D dims with base theta: the factor is the largest, and the interpolated band
// between the kept and the fully scaled frequencies fixes the rest (up to scaling original_max_seq_len,
// low_freq_factor and high_freq_factor together, which changes nothing; the nearest with low_freq_factor 1
// and an integer original_max_seq_len is chosen). Factors that are all 1 give type none. Fails unless the
// parameters reproduce every factor within 1e-6 relative. what names the tensor in messages.
int rt_rope_llama3_from_factors(const float *factors, int D, double theta, const char *what,
                                rt_rope_scaling *out, rt_error *err);

#endif
