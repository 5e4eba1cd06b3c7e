// Stage 1 of distillation: a teacher answers prompts. Batched sampling (temperature, top-k, top-p, stop
// strings, several samples per prompt), optionally keeping the teacher's top-k log-probabilities at every
// answer position, written as a retort dataset (dataset.h) with the teacher's name and hash.
//
// The work is cut into chunks of prompts; each finished chunk is written atomically to <out>.part/ next to
// a manifest of the settings, so an interrupted run started again with the same settings skips the chunks
// it has and redoes only the one it was in: no row is lost or written twice. Every sequence samples from its
// own RNG stream (seed, prompt, sample), so a chunk comes out the same whether or not the run was resumed.
// When every chunk exists they are merged into <out> (atomically) and <out>.part/ is removed.
//
// Several ranks (mpirun, srun) share the chunks: each makes whole chunks, rank 0 writes every file, and the
// output is the file one process writes, byte for byte, whatever the number of ranks (synth.c says why).
// An interrupted run may be continued with another number of ranks.
#ifndef RT_SYNTH_RUN_H
#define RT_SYNTH_RUN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "train/comm.h"

typedef struct rt_synth_prompts {
    size_t n;
    int32_t **ids;  // [n] each a document's start id (BOS, rt_dataset_doc_ids) + the prompt's ids
    int32_t *len;   // [n] ids in each (the start id included)
    char **answers; // [n] the task's exact answers (to score the teacher), or NULL for free prompts
    char task[64];  // dataset attributes of the output
    char split[16];
    char source[512];         // where the prompts came from, for the output's source attribute
    const rt_tokenizer *tok;  // the teacher's (borrowed): encodes the prompts, ends and stops the answers
    char tok_type[16];        // its record, which the output dataset keeps (tokenizer_source.h)
    char tok_hash[17];        //
    int32_t start_id, eos_id; // what a document starts and ends with
} rt_synth_prompts;

void rt_synth_prompts_free(rt_synth_prompts *p);

// Prompts of a synthetic task (cfg->synth.task / n_prompts / split, seeded by run.seed); tasks are
// byte-level, so tok must be the byte tokenizer (tok_type "byte").
int rt_synth_prompts_from_task(const rt_config *cfg, const rt_tokenizer *tok, const char *tok_type,
                               const char *tok_hash, rt_synth_prompts *p, rt_error *err);
// Prompts of a JSONL file: one object per line with a string "prompt" (other keys are ignored; blank lines
// are skipped), encoded with tok (its record: tok_type, tok_hash). Errors name the file and line.
int rt_synth_prompts_from_jsonl(const char *path, const rt_tokenizer *tok, const char *tok_type,
                                const char *tok_hash, rt_synth_prompts *p, rt_error *err);

typedef struct rt_synth_stats {
    int64_t chunks_done, chunks_reused, sequences, answer_tokens;
    int64_t hit_max_tokens;  // answers cut at synth.max_tokens (or the teacher's max_seq_len)
    int64_t stopped;         // answers ended by a stop string
    int64_t correct, scored; // teacher exact match on task prompts (answers known)
    int stop_signal;         // the signal (on any rank) that stopped the run, 0 = none
    double seconds;
} rt_synth_stats;

// Runs the job: teacher is an inference model (generation runs through its KV cache) of batch
// synth.batch_size x its max_seq_len. teacher_path and teacher_hash name it in the output. stop_flag (may be
// NULL) is polled between batches: when set on any rank, every rank stops once the chunks being made are
// done or dropped, with the finished ones kept, and returns 1 (0 = complete, -1 = error). Collective over
// comm: every rank calls it with the same config, teacher and prompts (checked), and every rank returns the
// same status; an error on one rank is every rank's, named with that rank. stats are the whole run's on
// rank 0 (which alone prints), and only stop_signal and seconds elsewhere.
int rt_synth_run(const rt_config *cfg, rt_comm *comm, rt_model *teacher, const char *teacher_path,
                 const char *teacher_hash, const rt_synth_prompts *prompts, volatile sig_atomic_t *stop_flag,
                 rt_synth_stats *stats, rt_error *err);

#endif
