#!/usr/bin/env bash
# Installs, from Debian's registry, whatever this machine lacks to build, test
# and run remat. Safe to run again: it installs nothing that is present.
# Called by the README's commands and by .ci/run.
set -euo pipefail

# Build: compilers, header libraries, BLAS (the OpenMP variant, so BLAS and the kernels
# share libgomp's thread pool), SLEEF (vectorised math), oneDNN (convolutions), CBC/CLP
# (Checkmate's MILP), ONNX (model import), pybind11 (the Python module).
# Tests and scripts: pytest, NumPy, pandas, matplotlib, PyTorch and torchvision (the
# gradient oracle and ONNX export), nbconvert and ipykernel (the teaching notebook).
packages=(cmake g++ make libxtensor-dev libxsimd-dev xtl-dev doctest-dev libfmt-dev
          libopenblas-openmp-dev nlohmann-json3-dev libcli11-dev libbenchmark-dev
          libsleef-dev libdnnl-dev coinor-libcbc-dev coinor-libclp-dev libonnx-dev libprotobuf-dev
          pybind11-dev python3-pybind11 python3-pytest python3-numpy python3-pandas
          python3-matplotlib python3-torch python3-torchvision jupyter-nbconvert python3-ipykernel)
# ADOL-C is optional: only strategy_bench's Revolve comparison uses it.
optional=(libadolc-dev)
[[ "${REMAT_WITH_SANITIZERS:-0}" == 1 ]] && packages+=(clang libclang-rt-14-dev valgrind)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
missing_optional=()
for p in "${optional[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_optional+=("$p")
done

if (( ${#missing[@]} + ${#missing_optional[@]} == 0 )); then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "[install_deps] installing: ${missing[*]} ${missing_optional[*]}" >&2
$SUDO apt-get update -qq >/dev/null
if (( ${#missing[@]} )); then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if (( ${#missing_optional[@]} )); then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing_optional[@]}" >/dev/null \
    || echo "[install_deps] optional packages not installed: ${missing_optional[*]} (strategy_bench skips its ADOL-C column)" >&2
fi
