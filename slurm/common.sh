# shellcheck shell=bash
# The body shared by the SLURM templates (sourced by them, not run on its own).
#
# emnist_slurm_train CONFIG [--section.key VALUE ...]   (python -m emnist_dist.train; done: final.json)
# emnist_slurm_audit CONFIG [--section.key VALUE ...]   (python -m emnist_dist.audit; done: summary.json)
# emnist_slurm_sweep CONFIG SPACE [--section.key VALUE ...]  (python -m emnist_dist.sweep; done: exit 0)
#   Starts one `accelerate launch` per node through srun (one training process per GPU; a single
#   process runs without the launcher), forwards the pre-timeout USR1 (#SBATCH --signal=B:USR1@120)
#   to the training processes, which checkpoint and exit, then requeues the job; the requeued job
#   resumes with --resume auto (a sweep: the interrupted trial, from the study).
#
# Settings (environment variables; see slurm/README.md):
#   EMNIST_REPO      repository checkout holding configs/        (default: $SLURM_SUBMIT_DIR)
#   EMNIST_ACTIVATE  shell line run first to activate the environment, e.g.
#                    'source .venv/bin/activate' or 'module load cuda && conda activate emnist'
#   GPUS_PER_NODE    GPUs per node                                (default: what SLURM allocated)
#   PROCS_PER_NODE   training processes per node                  (default: GPUS_PER_NODE)
#   EMNIST_CPU=1     train on CPU (gloo) instead; PROCS_PER_NODE defaults to 1 without GPUs
#   OUTPUT_DIR       run folder                                   (default: runs/$SLURM_JOB_NAME)
#   MAIN_PROCESS_PORT rendezvous port on the head node           (default: 20000 + job id % 20000)
#   MAX_REQUEUES     stop requeueing after this many restarts     (default: 20)
#   STUDY_DIR        a sweep's study folder                       (default: runs/$SLURM_JOB_NAME)
#   TRIALS           a sweep's number of trials in all            (required by emnist_slurm_sweep)

set -euo pipefail

log() { echo "[$(date '+%F %T')] emnist-slurm: $*"; }

# GPUs SLURM gave this node: --gpus-per-node and --gres=gpu set SLURM_GPUS_ON_NODE; older
# versions only SLURM_GPUS_PER_NODE (possibly typed, "a100:4"); else count CUDA_VISIBLE_DEVICES.
allocated_gpus() {
  if [[ -n ${SLURM_GPUS_ON_NODE:-} ]]; then
    echo "$SLURM_GPUS_ON_NODE"
  elif [[ -n ${SLURM_GPUS_PER_NODE:-} ]]; then
    echo "${SLURM_GPUS_PER_NODE##*:}"
  elif [[ -n ${CUDA_VISIBLE_DEVICES:-} ]]; then
    local ids
    IFS=, read -ra ids <<<"$CUDA_VISIBLE_DEVICES"
    echo "${#ids[@]}"
  else
    echo 0
  fi
}

# The address the other nodes reach the head node (the first of the allocation) at. SLURM's own
# NodeAddr for it, which is the host name on most clusters; a cluster whose node names do not
# resolve (like the loopback test cluster) still works.
head_node_address() {
  local hosts head addr
  hosts=$(scontrol show hostnames "$SLURM_JOB_NODELIST")
  head=${hosts%%$'\n'*} # the first line (`| head -n1` can fail with SIGPIPE under pipefail)
  addr=$(scontrol show node "$head" | sed -n 's/.*NodeAddr=\([^ ]*\).*/\1/p')
  echo "${addr:-$head}"
}

emnist_slurm_train() { emnist_slurm_run emnist_dist.train final.json "$@"; }
emnist_slurm_audit() { emnist_slurm_run emnist_dist.audit summary.json "$@"; }

# emnist_slurm_run MODULE DONE_FILE CONFIG [ARGS...]: the job is finished when it (re)wrote
# OUTPUT_DIR/DONE_FILE.
emnist_slurm_run() {
  local module=$1 done_file=$2 config=$3
  shift 3
  emnist_slurm_setup "$config"
  local output_dir=${OUTPUT_DIR:-runs/$SLURM_JOB_NAME}
  # "finished" means DONE_FILE was (re)written by this job: compare its mtime before and after
  local final=$output_dir/$done_file final_before
  final_before=$(stat -c %y "$final" 2>/dev/null || true)

  log "job $SLURM_JOB_ID (restart $emnist_restarts) on $SLURM_JOB_NODELIST: $emnist_nodes node(s) x" \
    "$emnist_procs process(es), output_dir=$output_dir"
  emnist_slurm_launch -m "$module" --config "$emnist_repo/$config" --output_dir "$output_dir" --resume auto \
    "${emnist_cpu_args[@]}" "$@"

  if [[ -f $final && $(stat -c %y "$final") != "$final_before" ]]; then
    log "finished: $final"
    exit 0
  fi
  emnist_slurm_requeue "training" "it resumes from $output_dir"
}

# emnist_slurm_sweep CONFIG SPACE [ARGS...]: one worker of the study in STUDY_DIR (each task of a
# job array is one); finished when the worker exits 0 (the study holds its TRIALS trials).
emnist_slurm_sweep() {
  local config=$1 space=$2
  shift 2
  emnist_slurm_setup "$config" "$space"
  : "${TRIALS:?set TRIALS, the number of trials the study should hold}"
  local study=${STUDY_DIR:-runs/$SLURM_JOB_NAME}

  log "job $SLURM_JOB_ID (array task ${SLURM_ARRAY_TASK_ID:-none}, restart $emnist_restarts) on" \
    "$SLURM_JOB_NODELIST: $emnist_nodes node(s) x $emnist_procs process(es), study=$study"
  emnist_slurm_launch -m emnist_dist.sweep --config "$(emnist_repo_path "$config")" --space "$(emnist_repo_path "$space")" \
    --study "$study" --trials "$TRIALS" "${emnist_cpu_args[@]}" "$@"

  if ((emnist_rc == 0)); then
    log "finished: no trial of $study left for this worker"
    exit 0
  fi
  emnist_slurm_requeue "the sweep worker" "it resumes the interrupted trial of $study"
}

# emnist_slurm_setup FILE...: check the job and the repository files, activate the environment, and
# size the launch (sets emnist_repo, emnist_nodes, emnist_procs, emnist_world, emnist_cpu_args,
# emnist_restarts).
emnist_slurm_setup() {
  : "${SLURM_JOB_ID:?submit this script with sbatch}"
  emnist_repo=${EMNIST_REPO:-$SLURM_SUBMIT_DIR}
  local file
  for file in "$@"; do
    if [[ ! -f $(emnist_repo_path "$file") ]]; then
      echo "error: $(emnist_repo_path "$file") not found: submit from the repository root or set EMNIST_REPO" >&2
      exit 2
    fi
  done
  if [[ -n ${EMNIST_ACTIVATE:-} ]]; then
    eval "$EMNIST_ACTIVATE"
  fi

  local gpus=${GPUS_PER_NODE:-$(allocated_gpus)}
  emnist_procs=${PROCS_PER_NODE:-$gpus}
  emnist_cpu_args=()
  if [[ ${EMNIST_CPU:-0} == 1 ]]; then
    emnist_cpu_args=(--cpu true)
    ((emnist_procs > 0)) || emnist_procs=1
  elif ((emnist_procs < 1)); then
    echo "error: no GPUs allocated to job $SLURM_JOB_ID (GPUS_PER_NODE=$gpus): request them with" \
      "#SBATCH --gpus-per-node, or set EMNIST_CPU=1 to train on CPU" >&2
    exit 2
  fi
  emnist_nodes=$SLURM_NNODES
  emnist_world=$((emnist_nodes * emnist_procs))
  emnist_restarts=${SLURM_RESTART_COUNT:-0}
}

# emnist_repo_path FILE: FILE itself when absolute, else the repository's FILE.
emnist_repo_path() {
  if [[ $1 == /* ]]; then echo "$1"; else echo "$emnist_repo/$1"; fi
}

# emnist_slurm_launch PYTHON_ARGS...: run `python PYTHON_ARGS` on every node of the job through srun
# (under `accelerate launch` when there is more than one process), forwarding USR1; sets emnist_rc
# (its exit code) and emnist_preempted (1 when USR1 arrived).
emnist_slurm_launch() {
  local launch=(--num_machines "$emnist_nodes" --num_processes "$emnist_world"
    --main_process_ip "$(head_node_address)" --main_process_port "${MAIN_PROCESS_PORT:-$((20000 + SLURM_JOB_ID % 20000))}")
  if ((emnist_world > 1)); then
    launch+=(--multi_gpu) # DDP, also on CPU: accelerate's own --cpu would start a single process
  fi

  # live logs: Python block-buffers stdout into srun's pipes otherwise
  export PYTHONUNBUFFERED=${PYTHONUNBUFFERED:-1}
  # torchrun forwards only the signals listed here to its workers (the default lacks SIGUSR1)
  export PET_SIGNALS_TO_HANDLE=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1
  local step_opts=(--nodes="$emnist_nodes" --ntasks-per-node=1 --kill-on-bad-exit=1)
  if [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then
    step_opts+=(--cpus-per-task="$SLURM_CPUS_PER_TASK") # srun >= 22.05 no longer inherits it
  fi

  emnist_preempted=0
  local step_pid=
  trap 'log "USR1 (time limit near or preemption): asking training to checkpoint and stop"
        if ((!emnist_preempted)) && [[ -n $step_pid ]]; then kill -USR1 "$step_pid"; fi
        emnist_preempted=1' USR1
  # SLURM signals the job step itself on scancel / at the time limit: keep waiting for it
  trap 'log "SIGTERM: waiting for the training processes to stop"' TERM

  if ((emnist_world > 1)); then
    log "on each node: accelerate launch --machine_rank \$SLURM_NODEID ${launch[*]} $*"
    # One launcher per node; single quotes so that each node expands its own SLURM_NODEID.
    # shellcheck disable=SC2016
    srun "${step_opts[@]}" bash -c 'exec accelerate launch --machine_rank "$SLURM_NODEID" "$@"' \
      launcher "${launch[@]}" "$@" &
  else
    # accelerate's single-process launcher would die of the USR1 meant for its child: no launcher
    log "python $*"
    srun "${step_opts[@]}" python "$@" &
  fi
  step_pid=$!
  # wait returns early whenever a trapped signal arrives: wait again until the step has ended,
  # then once more for its exit status (bash keeps it)
  while kill -0 "$step_pid" 2>/dev/null; do wait "$step_pid" || true; done
  emnist_rc=0
  wait "$step_pid" || emnist_rc=$?
}

# emnist_slurm_requeue WHAT HOW: after a launch that did not finish, requeue the job when USR1 stopped it
# (at most MAX_REQUEUES times), else exit with the launch's code.
emnist_slurm_requeue() {
  local what=$1 how=$2 max_requeues=${MAX_REQUEUES:-20}
  if ((!emnist_preempted)); then
    log "$what exited with code $emnist_rc without finishing and without a preemption signal: not requeueing"
    exit $((emnist_rc ? emnist_rc : 1))
  fi
  if ((emnist_restarts >= max_requeues)); then
    log "already restarted $emnist_restarts times (MAX_REQUEUES=$max_requeues): not requeueing"
    exit 1
  fi
  log "checkpointed ($what exit code $emnist_rc): requeueing job $SLURM_JOB_ID, $how"
  scontrol requeue "$SLURM_JOB_ID"
}
