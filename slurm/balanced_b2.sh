#!/bin/bash
# EfficientNet-B2 on EMNIST Balanced (configs/balanced_b2.yaml) on one node, one process per GPU.
#
#   mkdir -p logs && sbatch slurm/balanced_b2.sh [--section.key VALUE ...]
#
# Submit from the repository root (or set EMNIST_REPO). Arguments after the script override the
# recipe, e.g. --train.epochs 30. Preempted or near its time limit, the job checkpoints, requeues
# itself and resumes. Environment overrides (EMNIST_ACTIVATE, GPUS_PER_NODE, OUTPUT_DIR, ...):
# slurm/README.md. Edit the header below to fit your cluster (partition, account, GPU type).
#
#SBATCH --job-name=emnist-balanced-b2
#SBATCH --nodes=1
# one launcher per node; it starts one training process per GPU
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --mem=64G
#SBATCH --time=04:00:00
#SBATCH --output=logs/%x-%j.out
# a requeued job appends to the same log
#SBATCH --open-mode=append
# USR1 to this script 120 s before the time limit: checkpoint, then requeue
#SBATCH --signal=B:USR1@120
#SBATCH --requeue

# sbatch runs a copy of this file from its spool directory: find the repository from where the
# job was submitted.
# shellcheck source=slurm/common.sh
source "${EMNIST_REPO:-$SLURM_SUBMIT_DIR}/slurm/common.sh" ||
  { echo "error: slurm/common.sh not found: submit from the repository root or set EMNIST_REPO" >&2; exit 2; }
emnist_slurm_train configs/balanced_b2.yaml "$@"
