#!/usr/bin/env bash
# The README's main command: installs missing packages, builds, and compares
# every strategy on the default model (a table on stdout, CSV and PNG in results/).
# Extra arguments go to `remat compare` (e.g. --model resmlp:layers=64 --budgets 50%,30%).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target remat_cli_main >/dev/null
mkdir -p results
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-2}
exec build/bin/remat compare --csv results/compare.csv --plot results/compare.png "$@"
