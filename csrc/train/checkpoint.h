// Checkpoints are one HDF5 file each (layout in docs/checkpoint.md):
//   /model/<name>          fp32 weights, row-major, GGUF llama names (token_embd.weight, blk.0.attn_q.weight,
//   ...) /lora/<name>.lora_a|b  LoRA adapters (adapter checkpoints; attributes base, base_hash)
//   /optim/adam_m/<name>   fp32 AdamW first moments   (absent in a weights-only file)
//   /optim/adam_v/<name>   fp32 AdamW second moments
//   /state                 attributes: step, tokens_seen, rng (4 x uint64), data_epoch, data_index,
//   world_size /config                attribute yaml: the resolved config (the exact text `retort train` runs
//   with) /tokenizer             attributes: type ("byte", "bpe", "spm"), vocab_size, bos_id, eos_id, pad_id;
//                          real tokenizers also format, hash and the dataset source (their file's bytes) root
//   attributes        format = "retort-checkpoint", version = 1, architecture = "llama", producer
// Every dataset is chunked with a Fletcher-32 checksum, so a damaged file reads as an error, not as weights.
// Files are written to a temp file in the same directory, fsynced, renamed, and the directory fsynced.
#ifndef RT_CHECKPOINT_H
#define RT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "base/named_tensor.h"
#include "config/config.h"
#include "base/files.h"
#include "tokenizer/tokenizer_source.h"

#define RT_CKPT_FORMAT   "retort-checkpoint"
#define RT_CKPT_VERSION  1
#define RT_CKPT_PATH_MAX 1024

typedef struct rt_train_state {
    int64_t step;        // optimizer steps completed
    int64_t tokens_seen; // training tokens consumed (all ranks)
    uint64_t rng[4];     // the run's RNG state (sampling, future dropout)
    int64_t data_epoch;  // epoch of the data order
    int64_t data_index;  // next position in that epoch's shuffled window order
    int64_t world_size;  // ranks that wrote it
} rt_train_state;

// The model's tokenizer (tokenizer/tokenizer_source.h): type, vocab_size, bos/eos/pad ids, and for a real
// tokenizer its source bytes, format and hash (borrowed by writers, owned after rt_ckpt_read).
typedef rt_tok_source rt_tokenizer_info;

// What a checkpoint holds. Writers fill it with borrowed pointers; rt_ckpt_read fills it with owned memory.
typedef struct rt_ckpt {
    rt_named_tensor *model; // [n_model]
    int n_model;
    rt_named_tensor *adam_m; // [n_optim], same names and shapes as model tensors (trainable ones)
    rt_named_tensor *adam_v; // [n_optim]
    int n_optim;             // 0: no optimizer state in the file
    // An adapter checkpoint (LoRA / QLoRA) holds no /model: its adapters are in /lora, and /lora's
    // attributes name the base checkpoint they adapt and its content hash (rt_file_hash).
    rt_named_tensor *lora; // [n_lora] blk.N.attn_q.weight.lora_a, ... (/lora/<name>)
    int n_lora;
    char base[RT_CKPT_PATH_MAX];
    char base_hash[17];
    rt_train_state state;
    char *config_yaml;
    char architecture[32]; // "llama"
    rt_tokenizer_info tokenizer;
} rt_ckpt;

// The checkpoint's tokenizer, built from what /tokenizer stores (the byte tokenizer for old checkpoints).
int rt_ckpt_tokenizer(const rt_ckpt *c, rt_tokenizer **out, rt_error *err);

// Write atomically to path. Fails without touching path if anything goes wrong.
int rt_ckpt_write(const char *path, const rt_ckpt *c, rt_error *err);

// Read a whole checkpoint into host memory and validate it (format, version, shapes, finite sizes).
// with_optim = 0 skips the optimizer moments (inference, eval, export).
int rt_ckpt_read(const char *path, int with_optim, rt_ckpt *out, rt_error *err);
void rt_ckpt_free(rt_ckpt *c);

// Run-directory helpers. Checkpoints are <dir>/ckpt-<step, 8 digits>.h5 and <dir>/ckpt-latest.h5 is a
// symlink to the newest one, replaced atomically.
void rt_ckpt_step_path(char *out, size_t cap, const char *dir, int64_t step);
// Write, point ckpt-latest.h5 at it, then delete all but the newest `keep` ckpt-*.h5 files.
int rt_ckpt_save_rotating(const char *dir, const rt_ckpt *c, int keep, char *written_path, size_t cap,
                          rt_error *err);
// Newest checkpoint in dir that reads back completely; damaged ones are skipped with a warning on stderr.
// Returns 0 and fills out/path, or -1 (err says whether none exist or all were damaged).
int rt_ckpt_load_latest(const char *dir, int with_optim, rt_ckpt *out, char *path, size_t cap, rt_error *err);

// Parse a checkpoint's stored config text (cfg gets the defaults first, then the stored keys, validated).
int rt_ckpt_parse_config(const char *ckpt_path, const char *yaml, rt_config *cfg, rt_error *err);

#endif
