#!/bin/bash
# Data-quality audit of EMNIST ByClass (configs/audit_byclass.yaml): the K fold models train one after
# another in this one allocation, one process per GPU, then the ranking is written.
#
#   mkdir -p logs && sbatch slurm/audit_byclass.sh [--section.key VALUE ...]
#
# Submit from the repository root (or set EMNIST_REPO). Arguments after the script override the
# recipe, e.g. --data.folds 5 --model.name resnet18. Each fold is an ordinary training run in
# OUTPUT_DIR/fold_K: preempted or near its time limit, the job checkpoints inside the fold it is
# training, requeues itself and resumes there; finished folds are not trained again. The job is done
# when OUTPUT_DIR/summary.json is written. Environment overrides: slurm/README.md.
#
#SBATCH --job-name=emnist-audit-byclass
#SBATCH --nodes=1
# one launcher per node; it starts one training process per GPU
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --mem=128G
#SBATCH --time=08:00:00
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
emnist_slurm_audit configs/audit_byclass.yaml "$@"
