#!/usr/bin/env bash
# The teaching figures: runs `remat explain` for every strategy on one small model at one
# budget and draws into $OUT:
#   memory_over_time.png          revolve's live bytes per instruction, stacked by category
#   value_lifetimes_<strategy>.png one bar per value from allocation to free, recomputations hatched
#   schedule_<strategy>.png       the schedule diagram (stage against time step) of each strategy
#   strategies_side_by_side.png   memory over time of every strategy, on shared axes
# plus each strategy's explain output (<strategy>.json, <strategy>.csv, <strategy>.txt).
# Environment:
#   BIN     folder holding an existing `remat` (default build/bin); built only when missing
#   BUILD   build folder used when remat must be built (default build)
#   OUT     output folder (default results/teaching)
#   MODEL   default mlp:layers=12,width=64,batch=16
#   BUDGET  default 44KiB, the least at which every budgeted strategy is feasible on that
#           model; store-all is drawn unbudgeted as the baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-mlp:layers=12,width=64,batch=16}
BUDGET=${BUDGET:-44KiB}
BUILD=${BUILD:-build}
BIN=${BIN:-$BUILD/bin}
OUT=${OUT:-results/teaching}
if [[ ! -x "$BIN/remat" ]]; then
  ./scripts/install_deps.sh
  echo "[teaching_figures] $BIN/remat is missing: building it in $BUILD" >&2
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  # Compiler output goes to a log (shown only if the build fails).
  log=$(mktemp)
  if ! cmake --build "$BUILD" -j2 --target remat_cli_main >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  BIN=$BUILD/bin
fi
/usr/bin/python3 -c "import matplotlib" 2>/dev/null || ./scripts/install_deps.sh
plots=experiments/plots
mkdir -p "$OUT"
strategies=(store-all sqrt chen-greedy revolve optimal greedy)
for s in "${strategies[@]}"; do
  budget=(--budget "$BUDGET")
  [[ $s == store-all ]] && budget=()
  "$BIN/remat" explain --model "$MODEL" --strategy "$s" "${budget[@]}" --format json \
    --memory-csv "$OUT/$s.csv" > "$OUT/$s.json"
  "$BIN/remat" explain --model "$MODEL" --strategy "$s" "${budget[@]}" > "$OUT/$s.txt"
  /usr/bin/python3 "$plots/schedule_diagram.py" "$OUT/$s.json" "$OUT/schedule_$s.png"
  /usr/bin/python3 "$plots/value_lifetimes.py" "$OUT/$s.json" "$OUT/value_lifetimes_$s.png"
done
/usr/bin/python3 "$plots/memory_over_time.py" "$OUT/revolve.json" "$OUT/memory_over_time.png"
/usr/bin/python3 "$plots/strategies_side_by_side.py" "$OUT/strategies_side_by_side.png" \
  $(for s in "${strategies[@]}"; do echo "$OUT/$s.json"; done)
echo "[teaching_figures] wrote $OUT/memory_over_time.png, $OUT/value_lifetimes_<strategy>.png, $OUT/schedule_<strategy>.png and $OUT/strategies_side_by_side.png"
