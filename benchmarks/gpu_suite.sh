#!/usr/bin/env bash
# Everything that needs a GPU, in one command and under 8 minutes on one GPU:
#   1. the CUDA tests (pytest -m cuda: bf16 autocast, channels_last, compile without recompiles, no-sync step);
#   2. benchmarks.gpu_throughput: EfficientNet-B3 @ 112 px, bf16, with and without torch.compile;
#   3. the CUDA half of benchmarks.input_pipeline: on-device pipeline vs model images/s;
#   4. a 300-step run of configs/balanced_b2.yaml on synthetic Balanced-sized data.
# Each part has its own time limit and log; the last thing printed is one table of the results.
#
#   bash benchmarks/gpu_suite.sh [OUT_DIR]        # default runs/gpu_suite; PYTHON=... picks the interpreter
#
# Python packages the GPU machine lacks can travel as wheels in .whl/ (README, "Expected results and
# speed"): they are installed into a temporary folder put on PYTHONPATH, nothing else is touched.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
out=${1:-runs/gpu_suite}
python=${PYTHON:-python3}
mkdir -p "$out" || exit 2

if compgen -G ".whl/*.whl" >/dev/null; then
  site=$(mktemp -d)
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl || exit 2
  export PYTHONPATH="$site"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

# Preflight: a CUDA device and the packages the parts import, named in one line when missing.
"$python" - <<'EOF' || exit 2
import importlib.util
import sys

import torch

needed = ["accelerate", "datasets", "jsonargparse", "lion_pytorch", "pytest", "xdist", "timm", "torchmetrics", "torchvision"]
missing = [name for name in needed if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"gpu_suite: missing Python packages: {', '.join(missing)}: carry them as wheels in .whl/ (README)")
if not torch.cuda.is_available():
    sys.exit("gpu_suite: no CUDA device visible: this suite is for a GPU machine")
print(f"gpu_suite: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF

names=() seconds=() statuses=() results=()

# part NAME LIMIT_S COMMAND...: run COMMAND with a time limit, its output in $out/NAME.log.
part() {
  local name=$1 limit=$2 start=$SECONDS rc
  shift 2
  echo "gpu_suite: $name (limit ${limit}s) ..."
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  rc=$?
  names+=("$name")
  seconds+=("$((SECONDS - start))")
  case $rc in
    0) statuses+=("ok") ;;
    124) statuses+=("timed out") ;;
    *) statuses+=("failed ($rc)") ;;
  esac
}

# summary NAME PATTERN: the log's lines matching PATTERN, joined by "; ".
summary() {
  grep -E "$2" "$out/$1.log" | sed -e 's/^ *//' | paste -sd ';' - | sed -e 's/;/; /g'
}

# Other modules' tests are collected too, so that the marker selects every CUDA test in the suite;
# a module whose packages are absent on this machine is reported, not fatal to the CUDA tests.
part cuda_tests 130 "$python" -m pytest -m cuda -q -n 0 -p no:cacheprovider --continue-on-collection-errors -rs tests
results+=("$(summary cuda_tests '(passed|failed|skipped|deselected|error).* in [0-9.]+s')")

part gpu_throughput 180 "$python" -m benchmarks.gpu_throughput --steps 50
results+=("$(summary gpu_throughput '^compile=')")

part input_pipeline 50 "$python" -m benchmarks.input_pipeline --device cuda --no-per-image --batches 100
results+=("$(summary input_pipeline '(images/s|ratio)')")

rm -rf "$out/balanced_b2"  # a fresh run each time
part balanced_b2_300_steps 120 "$python" -m emnist_dist.train --config configs/balanced_b2.yaml \
  --data.source synthetic --data.synthetic_train_per_class 2400 --data.synthetic_test_per_class 400 \
  --data.cache_dir "$out/cache" --model.pretrained false --train.max_steps 300 \
  --log.trackers "[]" --log.progress false --log.log_every 50 --resume never --output_dir "$out/balanced_b2"
results+=("$(summary balanced_b2_300_steps '(^step 300/|^test/acc)')")

echo
echo "| part | seconds | status | result |"
echo "|---|---|---|---|"
failed=0
for i in "${!names[@]}"; do
  echo "| ${names[$i]} | ${seconds[$i]} | ${statuses[$i]} | ${results[$i]} |"
  [ "${statuses[$i]}" = ok ] || failed=1
done
echo "logs: $out/*.log; total ${SECONDS}s"
exit "$failed"
