#!/usr/bin/env bash
# Contract: reproduces every paper under experiments/ in one command (docs/results.md):
# installs what the machine lacks (scripts/install_deps.sh), configures a Release build
# in build/ and builds the paper drivers with -j2, then runs each driver with
# OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2. Each driver writes
# CSV, JSON and PNG files to results/<paper>/; its printed summary goes to
# results/<paper>/summary.txt and its progress messages to results/<paper>/log.txt.
# Extra arguments go to every driver (e.g. --quick for a smoke run, --repeat 9).
# Exit status: 0 when every driver succeeded (every promise held); otherwise the
# failing drivers are named and the status is 1. Then every strategy at its least budget
# on six imported architectures (results/real_models/). About 11 minutes on 2 cores for the drivers (10 min 46 s
# measured with an incremental build on a shared machine; the build from scratch adds ~4 min).
set -euo pipefail
cd "$(dirname "$0")/.."
papers=(sqrt_n_claim chen2016 griewank2000 gruslys2016 beaumont2019 kirisame2021 jain2020 seed_claims)
start=$(date +%s)

./scripts/install_deps.sh
mkdir -p results
echo "[reproduce_all] building the paper drivers (Release, -j2) in build/ (log: results/build.log)"
if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2 --target papers remat_cli_main; } >results/build.log 2>&1; then
  tail -n 30 results/build.log >&2
  echo "[reproduce_all] the build failed: see results/build.log" >&2
  exit 1
fi
built=$(date +%s)
echo "[reproduce_all] built in $((built - start)) s"

export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
# Real architectures for the drivers that take them (chen2016, kirisame2021): torchvision's
# resnet18 and densenet121 with random weights, batch 4 at 64x64, exported by PyTorch.
echo "[reproduce_all] exporting resnet18 and densenet121 to results/onnx_models/"
if ! /usr/bin/python3 scripts/export_models.py --out results/onnx_models --models resnet18,densenet121 \
       --batch 4 --image 64 >results/onnx_models.log 2>&1; then
  cat results/onnx_models.log >&2
  echo "[reproduce_all] exporting the ONNX models failed: see results/onnx_models.log" >&2
  exit 1
fi
declare -A real_models=(
  [chen2016]="--onnx results/onnx_models/resnet18.onnx --onnx results/onnx_models/densenet121.onnx"
  [kirisame2021]="--onnx results/onnx_models/resnet18.onnx")
failed=()
for p in "${papers[@]}"; do
  mkdir -p "results/$p"
  t0=$(date +%s)
  echo "[reproduce_all] ---- $p ----"
  read -r -a extra <<<"${real_models[$p]:-}"
  if build/bin/paper_$p --out "results/$p" "${extra[@]}" "$@" 2>"results/$p/log.txt" | tee "results/$p/summary.txt"; then
    echo "[reproduce_all] $p done in $(( $(date +%s) - t0 )) s"
  else
    echo "[reproduce_all] $p FAILED after $(( $(date +%s) - t0 )) s; the end of results/$p/log.txt:" >&2
    tail -n 5 "results/$p/log.txt" >&2
    failed+=("$p")
  fi
done

# Every strategy at its own least feasible budget on imported real architectures
# (docs/results.md, "Real architectures"): four torchvision CNNs and two small
# transformers (the CNNs at batch 2, 64x64; gpt2_tiny at batch 4, context 64; vit_tiny at
# batch 4, 32x32), one compare each, and their plot.
echo "[reproduce_all] ---- real_models ----"
t0=$(date +%s)
mkdir -p results/real_models
real=(resnet18 resnet50 mobilenet_v2 densenet121 gpt2_tiny vit_tiny)
if /usr/bin/python3 scripts/export_models.py --out results/real_models/onnx \
     --models resnet18,resnet50,mobilenet_v2,densenet121 --batch 2 --image 64 >results/real_models/log.txt 2>&1 &&
   /usr/bin/python3 scripts/export_models.py --out results/real_models/onnx --models gpt2_tiny,vit_tiny \
     --batch 4 --image 32 --context 64 >>results/real_models/log.txt 2>&1; then
  ok=1
  for m in "${real[@]}"; do
    build/bin/remat compare --onnx "results/real_models/onnx/$m.onnx" --budgets least --threads 2 --repeat 3 \
      --strategies sqrt,chen-greedy,revolve,optimal,greedy,checkmate-lp --time-limit 120 --json \
      >"results/real_models/$m.json" 2>>results/real_models/log.txt || ok=0
  done
  jsons=()
  for m in "${real[@]}"; do jsons+=("results/real_models/$m.json"); done
  /usr/bin/python3 experiments/plots/real_models_plot.py results/real_models/real_models.png "${jsons[@]}" \
    2>>results/real_models/log.txt || ok=0
else
  ok=0
fi
if (( ok )); then
  echo "[reproduce_all] real_models done in $(( $(date +%s) - t0 )) s"
else
  echo "[reproduce_all] real_models FAILED: see results/real_models/log.txt" >&2
  failed+=(real_models)
fi

total=$(( $(date +%s) - start ))
echo "[reproduce_all] total $((total / 60)) min $((total % 60)) s (build $((built - start)) s)"
echo "[reproduce_all] results: $(pwd)/results/<paper>/ (CSV, JSON, PNG, summary.txt); read them with docs/results.md"
if (( ${#failed[@]} )); then
  echo "[reproduce_all] failed: ${failed[*]}" >&2
  exit 1
fi
