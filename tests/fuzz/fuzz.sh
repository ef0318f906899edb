#!/usr/bin/env bash
# Builds and runs the libFuzzer targets (see tests/fuzz/CMakeLists.txt, docs/reliability.md).
#   tests/fuzz/fuzz.sh build                   configure and build build-fuzz/ with clang
#   tests/fuzz/fuzz.sh run TARGET [SECONDS]    fuzz TARGET (default 60 s) from its seed corpus
#   tests/fuzz/fuzz.sh replay TARGET FILE...   run TARGET once on the given inputs (a crash to reproduce)
# Targets: fuzz_chain, fuzz_model, fuzz_cli. New interesting inputs go to
# build-fuzz/corpus/TARGET/ (the seeds in tests/fuzz/corpus/TARGET/ are only read);
# a crashing input is written to build-fuzz/artifacts/ and the script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${REMAT_FUZZ_BUILD:-build-fuzz}

case "${1:-}" in
  build)
    # OpenMP off: the targets are single-threaded, and clang's libomp need not be installed.
    CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREMAT_FUZZ=ON -DREMAT_CUDA=OFF \
      -DREMAT_OPENMP=OFF -DREMAT_TESTS=OFF -DREMAT_EXPERIMENTS=ON >/dev/null
    cmake --build "$build" -j2 --target fuzz_chain fuzz_model fuzz_cli
    ;;
  run)
    target=${2:?usage: fuzz.sh run TARGET [SECONDS]}
    seconds=${3:-60}
    mkdir -p "$build/corpus/$target" "$build/artifacts"
    # -timeout: an input running 30 s is a hang; -rss_limit_mb: the default 2 GiB, stated.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
      "$build/bin/$target" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -max_len=4096 \
        -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" \
        "$build/corpus/$target" "tests/fuzz/corpus/$target"
    ;;
  replay)
    target=${2:?usage: fuzz.sh replay TARGET FILE...}
    shift 2
    "$build/bin/$target" -runs=1 "$@"
    ;;
  *)
    sed -n '2,9p' "$0"
    exit 2
    ;;
esac
