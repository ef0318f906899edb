#!/usr/bin/env bash
# The README's test command: installs missing packages, builds (Release, -j2)
# into build/, and runs the whole suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2
cd build && ctest --output-on-failure -j2
