#!/bin/bash
# A hyperparameter sweep (python -m emnist_dist.sweep) as a SLURM job array: every array task is
# one worker of the same Optuna study, which lives in a file on the shared filesystem (no server).
#
#   mkdir -p logs && TRIALS=32 sbatch --array=0-7%4 slurm/sweep.sh --train.epochs 12 [--section.key VALUE ...]
#
# (--train.epochs 12: the short trials the W&B sweep file's own command asks for.)
# 8 workers, at most 4 at a time, pull trials from the study in STUDY_DIR (default runs/<job name>)
# until it holds TRIALS trials. Each task trains one trial at a time on its node (one process per GPU
# under accelerate launch; the main process asks the study and sends the trial to the others).
# Preempted or near its time limit, a task checkpoints its trial, requeues itself, and the trial
# resumes from its checkpoint under the same number (in whichever task claims it first). Submit from
# the repository root (or set EMNIST_REPO); CONFIG and SPACE (below) are relative to it (or absolute); arguments
# after the script override the base config for every trial. Resubmitting the same command adds
# workers to the same study. Environment overrides: slurm/README.md.
#
#SBATCH --job-name=emnist-sweep
#SBATCH --nodes=1
# one launcher per node; it starts one training process per GPU
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=04:00:00
# one log per array task (%A: the array's job id, %a: the task)
#SBATCH --output=logs/%x-%A_%a.out
# a requeued task appends to the same log
#SBATCH --open-mode=append
# USR1 to this script 120 s before the time limit: checkpoint the trial, then requeue
#SBATCH --signal=B:USR1@120
#SBATCH --requeue

CONFIG=${CONFIG:-configs/byclass_b3.yaml}
SPACE=${SPACE:-sweeps/byclass_b3.yaml}
export TRIALS=${TRIALS:-32}

# sbatch runs a copy of this file from its spool directory: find the repository from where the
# job was submitted.
# shellcheck source=slurm/common.sh
source "${EMNIST_REPO:-$SLURM_SUBMIT_DIR}/slurm/common.sh" ||
  { echo "error: slurm/common.sh not found: submit from the repository root or set EMNIST_REPO" >&2; exit 2; }
emnist_slurm_sweep "$CONFIG" "$SPACE" "$@"
