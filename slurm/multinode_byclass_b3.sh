#!/bin/bash
# EfficientNet-B3 on EMNIST ByClass (configs/byclass_b3.yaml) on N nodes x G GPUs: srun starts one
# `accelerate launch` per node, which starts one training process per GPU (N*G processes in all).
#
#   mkdir -p logs && sbatch slurm/multinode_byclass_b3.sh [--section.key VALUE ...]
#   sbatch --nodes=4 slurm/multinode_byclass_b3.sh          # more nodes, same script
#
# Submit from the repository root (or set EMNIST_REPO). train.batch_size is the global batch: keep
# it, and scale train.lr with it if you raise it. Head node, ranks and the rendezvous port are
# derived from the allocation (slurm/common.sh). Preempted or near its time limit, the job
# checkpoints, requeues itself and resumes (with the same number of processes). Environment
# overrides: slurm/README.md.
#
#SBATCH --job-name=emnist-byclass-b3-multinode
#SBATCH --nodes=2
# one launcher per node; it starts one training process per GPU
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --mem=128G
#SBATCH --time=06:00:00
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
emnist_slurm_train configs/byclass_b3.yaml "$@"
