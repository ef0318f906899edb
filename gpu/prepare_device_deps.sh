#!/usr/bin/env bash
# Contract: run on the development machine (Debian, with the -dev packages that
# scripts/install_deps.sh installs) before a GPU run. Copies the header-only
# dependencies that the GPU machine lacks (it has CUDA, CMake, a compiler and
# PyTorch, but no Debian packages) into .device/include, an ignored folder that the
# device run carries: xtensor, xtl, xsimd, nlohmann (json), fmt (used header-only
# through FMT_HEADER_ONLY), doctest and CLI11. Nothing is downloaded. Prints the
# folder and its size; the device command then carries ".device/include".
# Usage: gpu/prepare_device_deps.sh [SOURCE_INCLUDE_DIR, default /usr/include]
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir=${1:-/usr/include}
target=.device/include
headers=(xtensor xtl xsimd nlohmann fmt doctest CLI)

missing=()
for h in "${headers[@]}"; do [[ -d "$source_dir/$h" ]] || missing+=("$h"); done
if (( ${#missing[@]} )); then
  echo "[prepare_device_deps] $source_dir lacks: ${missing[*]} (run scripts/install_deps.sh first)" >&2
  exit 1
fi

rm -rf "$target"
mkdir -p "$target"
for h in "${headers[@]}"; do cp -r "$source_dir/$h" "$target/"; done
# fmt header-only needs its implementation header, which Debian ships beside the others.
[[ -f "$target/fmt/format-inl.h" ]] || { echo "[prepare_device_deps] fmt/format-inl.h is missing" >&2; exit 1; }
# Versions, for the record (the device build prints them too).
{
  echo "copied from $source_dir on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  grep -h "define XTENSOR_VERSION_MAJOR\|define XTENSOR_VERSION_MINOR" "$target/xtensor/xtensor_config.hpp" || true
  grep -h "define FMT_VERSION " "$target/fmt/core.h" || true
  grep -h "define DOCTEST_VERSION_STR " "$target/doctest/doctest.h" || true
} > "$target/VERSIONS.txt"
echo "[prepare_device_deps] $(du -sh "$target" | cut -f1) in $PWD/$target; carry \".device/include\" to the GPU machine"
