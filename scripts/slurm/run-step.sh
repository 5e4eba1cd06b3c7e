# What the batch scripts in this folder share (bash, sourced at the top of each; not a job on its own):
#
#   rt_step CMD...     runs CMD (an `srun ... retort ...` line) and returns its exit status; a USR1 that
#                      reaches the batch shell meanwhile (#SBATCH --signal=B:USR1@SECONDS, or
#                      `scancel -b --signal=USR1 JOB`) is passed on to it, so retort checkpoints and exits 75
#   rt_finish STATUS   ends the batch script: on 75 ("checkpointed, not finished") it requeues this job (or
#                      array task), whose rerun starts the same script again and continues the run; any other
#                      status ends the job with it (0 done, 1 failed, 2 usage or config error)
#   rt_log MESSAGE     a line in the job's log, marked as the batch script's
#
# It also sets RETORT (the binary: $RETORT from the environment, else retort on PATH) and prints where the
# job runs. Why the detour through a background step: bash runs a trap only between commands, so with srun
# in the foreground the signal would wait until srun had ended, too late to checkpoint before the limit.

RETORT=${RETORT:-retort}
rt_usr1_count=0 # USR1s received; a `wait` a trap interrupted returns 128+10, not the step's status
rt_stop=0       # a stop came between steps: do not start another
rt_steps=0      # steps started
rt_step_pid=

rt_log() {
    echo "[batch $(date +%T)] $*" >&2
}

rt_on_usr1() {
    rt_usr1_count=$((rt_usr1_count + 1))
    if [[ -n "$rt_step_pid" ]] && kill -0 "$rt_step_pid" 2>/dev/null; then
        rt_log "USR1 after ${SECONDS} s: passing it to the step (srun or mpirun sends it on to every rank)"
        kill -USR1 "$rt_step_pid"
    elif ((rt_steps == 0)); then
        # a warning before anything ran: --signal asked for more seconds than the time limit leaves, and it
        # would come again at the start of every rerun; ignore it rather than requeue in a loop
        rt_log "USR1 after ${SECONDS} s, before the first step: ignored; --signal=B:USR1@S needs S <= the" \
            "time limit - 60 s"
    else
        rt_log "USR1 after ${SECONDS} s between steps: the next step is not started"
        rt_stop=1
    fi
}
trap rt_on_usr1 USR1

rt_step() {
    if ((rt_stop)); then
        rt_log "not starting '$*': a stop signal came before it"
        return 75
    fi
    rt_log "$*"
    rt_steps=$((rt_steps + 1))
    "$@" &
    rt_step_pid=$!
    local seen rc
    while :; do
        seen=$rt_usr1_count
        wait "$rt_step_pid"
        rc=$?
        # a wait cut short by the trap returns 128+10 while the step runs on: wait again for its own status
        ((rt_usr1_count == seen)) && break
    done
    rt_step_pid=
    return "$rc"
}

rt_finish() {
    local rc=$1 id=$SLURM_JOB_ID
    [[ -n "${SLURM_ARRAY_JOB_ID:-}" ]] && id=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}
    if [[ "$rc" == 75 ]]; then
        rt_log "checkpointed, not finished: requeueing job $id (its rerun continues from the checkpoint)"
        # Slurm ends this script with SIGTERM once the requeue is under way; the sleep keeps it from exiting
        # first with a status the job would record
        scontrol requeue "$id" && sleep 60
        rt_log "the requeue of job $id failed: submit again with RUN_DIR=<its run directory> to continue"
    else
        rt_log "step exited $rc: the job ends"
    fi
    exit "$rc"
}

if ! command -v "$RETORT" >/dev/null; then
    rt_log "retort not found: put it on PATH or set RETORT=/path/to/retort (sbatch passes the environment on)"
    exit 2
fi
rt_log "job ${SLURM_JOB_ID:-?}${SLURM_ARRAY_TASK_ID:+ (array task ${SLURM_ARRAY_JOB_ID}_$SLURM_ARRAY_TASK_ID)}," \
    "restart ${SLURM_RESTART_COUNT:-0}, on ${SLURM_JOB_NODELIST:-?}: ${SLURM_NTASKS:-1} task(s) x" \
    "${SLURM_CPUS_PER_TASK:-?} CPU(s)"
