#!/usr/bin/env bash
# Contract: the one script to run on a GPU machine (one H200; CUDA, CMake, a C++
# compiler and PyTorch installed; no Debian packages). In under 8 minutes it
# builds remat's CUDA backend, runs the GPU tests, the `--device cuda` CLI and the
# benchmarks, runs the same MLP step in PyTorch, and prints a short table last.
#
# What the machine lacks, and how this copes:
#  - Header-only dependencies (xtensor, xtl, xsimd, nlohmann json, fmt, doctest,
#    CLI11): copied from /usr/include by gpu/prepare_device_deps.sh on the
#    development machine into .device/include (ignored by git), which the device
#    run must carry. fmt is used header-only (FMT_HEADER_ONLY).
#  - CMake packages for them: the top-level CMakeLists.txt cannot configure there,
#    so this script builds gpu/device/CMakeLists.txt, which compiles the same
#    sources (autodiff, strategies, models, gpu, the CLI) with those headers and
#    builds only what runs here: remat_gpu_tests (tests/gpu_tests.cpp), gpu_bench
#    and the remat CLI.
#  - OpenBLAS: used when the machine has it (libopenblas and an OpenBLAS cblas.h);
#    otherwise the CPU backend links autodiff/cpu/blas_fallback (plain-loop CBLAS).
#    The CPU backend is only the oracle of the GPU tests there, on small tapes, and
#    is compared within a tolerance, so the fallback changes no verdict.
#  - OpenMP: used when the compiler has it.
# Steps (each bounded so that the whole stays under DEADLINE seconds, default 470):
#  1. tools: nvcc (CUDACXX, PATH, /usr/local/cuda*), cmake, python3 with torch;
#  2. configure + build (.device/build, -j nproc, sm_90 only);
#  3. remat_gpu_tests: every op against the CPU, the promises on the GPU;
#  4. remat run/compare --device cuda on small models (the promises, exit 0);
#  5. gpu_bench: gemm vs cuBLAS, elementwise vs D2D copy, the 100-layer MLP and a
#     transformer under every strategy (JSON in $OUT/gpu_bench.json);
#  6. gpu/torch_gpu_step.py: the MLP in PyTorch, store-all and checkpoint_sequential;
#  7. gpu/summarize.py: the table.
# Logs and JSON go to $OUT (the device tool's output folder) or .device/out.
# Exit status: 0 when the tests, the CLI runs and the benchmark's promises hold.
# Usage (device machine, repository root): bash gpu/check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${OUT:-$root/.device/out}
mkdir -p "$out"
deadline=${DEADLINE:-470}
start=$SECONDS
export NVIDIA_TF32_OVERRIDE=0  # no TF32 anywhere: remat's cuBLAS handle and PyTorch both run full f32

say() { echo "[check] $*"; }
elapsed() { echo $((SECONDS - start)); }
# run_step NAME LIMIT LOG CMD...: runs CMD under min(LIMIT, time left), output to LOG and the console.
run_step() {
  local name=$1 limit=$2 log=$3
  shift 3
  local left=$((deadline - (SECONDS - start)))
  (( left < limit )) && limit=$left
  if (( limit < 5 )); then
    say "$name: skipped, the ${deadline} s deadline is reached"
    return 124
  fi
  say "$name (at most ${limit} s; $(elapsed) s so far)"
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  (( rc == 124 )) && say "$name: timed out after ${limit} s"
  return "$rc"
}

# ---- 1. tools ----
nvcc=${CUDACXX:-}
[[ -z "$nvcc" ]] && nvcc=$(command -v nvcc || true)
[[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
if [[ -z "$nvcc" ]]; then
  for candidate in $(ls -d /usr/local/cuda-*/bin/nvcc 2>/dev/null | sort -V -r); do nvcc=$candidate; break; done
fi
if [[ -z "$nvcc" ]]; then
  say "no nvcc found (set CUDACXX): cannot build the CUDA backend"
  exit 1
fi
command -v cmake >/dev/null || { say "no cmake on PATH"; exit 1; }
if [[ ! -f .device/include/xtensor/xtensor.hpp ]]; then
  say ".device/include is missing: run gpu/prepare_device_deps.sh on the development machine and carry .device/include"
  exit 1
fi
say "nvcc: $nvcc ($("$nvcc" --version | tail -1)); $(cmake --version | head -1); $(c++ --version | head -1)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python=""
for candidate in ${PYTHON:-} python3 python; do
  if command -v "$candidate" >/dev/null && "$candidate" -c "import torch" 2>/dev/null; then python=$candidate; break; fi
done
if [[ -n "$python" ]]; then
  say "PyTorch: $("$python" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)') ($python)"
else
  say "no Python with PyTorch found (set PYTHON): its comparison will be skipped"
fi

# ---- 2. build ----
build=$root/.device/build
run_step "configure" 90 "$out/configure.log" \
  cmake -S gpu/device -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$nvcc" || { say "configure failed"; exit 1; }
# One invocation for every target (the project builds only what runs here), so that
# make can overlap them on all cores.
run_step "build" "${BUILD_SECONDS:-330}" "$out/build.log" cmake --build "$build" -j "$(nproc)" || { say "build failed (see $out/build.log)"; exit 1; }
say "built in $(elapsed) s"

# ---- 3. GPU tests ----
run_step "GPU tests" 150 "$out/gpu_tests.log" "$build/bin/remat_gpu_tests" --duration=true
tests_rc=$?
tests_line=$(grep "test cases:" "$out/gpu_tests.log" | tail -1 | sed 's/\[doctest\] //')
if grep -q "skipped: no CUDA device" "$out/gpu_tests.log"; then
  tests="SKIPPED: the tests saw no CUDA device (${tests_line:-?})"
  tests_rc=1
elif (( tests_rc == 0 )); then
  tests="PASS (${tests_line:-?})"
else
  tests="FAIL, rc ${tests_rc} (${tests_line:-see gpu_tests.log})"
fi

# ---- 4. the CLI on the GPU ----
cli_rc=0
run_step "remat run --device cuda" 60 "$out/cli_run.log" \
  "$build/bin/remat" run --device cuda --model mlp:layers=24,width=64,batch=16 --strategy revolve --repeat 3 || cli_rc=$?
run_step "remat compare --device cuda" 90 "$out/cli_compare.log" \
  "$build/bin/remat" compare --device cuda --model transformer:layers=2,width=32,heads=4,seq=16,batch=4,vocab=64 \
  --repeat 3 || cli_rc=$?
if (( cli_rc == 0 )); then cli="PASS (run and compare: promises hold)"; else cli="FAIL, rc ${cli_rc} (see cli_*.log)"; fi

# ---- 5. benchmarks ----
run_step "gpu_bench" 200 "$out/gpu_bench.log" "$build/bin/gpu_bench" --json "$out/gpu_bench.json" --steps 10
bench_rc=$?

# ---- 6. PyTorch ----
if [[ -n "$python" ]]; then
  run_step "PyTorch MLP step" 120 "$out/torch.log" \
    "$python" gpu/torch_gpu_step.py --layers 100 --width 512 --batch 256 --json "$out/torch.json" || true
fi

# ---- 7. the table, last ----
(( bench_rc != 0 )) && say "gpu_bench exited with $bench_rc (2: no CUDA device; 4: a promise broke; 124: timed out; see gpu_bench.log)"
"${python:-python3}" gpu/summarize.py --bench "$out/gpu_bench.json" --torch "$out/torch.json" --tests "$tests" \
  --cli "$cli" --seconds "$(elapsed)" | tee "$out/summary.txt"
(( tests_rc == 0 && cli_rc == 0 && bench_rc == 0 ))
