#!/usr/bin/env bash
# The teaching figures: builds the remat CLI, runs `remat explain` for every
# strategy on one small model at one budget, and draws into results/teaching/:
#   memory_over_time.png          revolve's live bytes per instruction, stacked by category
#   schedule_<strategy>.png       the schedule diagram (stage against time step) of each strategy
#   strategies_side_by_side.png   memory over time of every strategy, on shared axes
# plus each strategy's explain output (<strategy>.json, <strategy>.csv, <strategy>.txt).
# Environment: MODEL (default mlp:layers=12,width=64,batch=16), BUDGET (default
# 44KiB, the least at which every budgeted strategy is feasible on that model;
# store-all is drawn unbudgeted as the baseline), BUILD (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-mlp:layers=12,width=64,batch=16}
BUDGET=${BUDGET:-44KiB}
BUILD=${BUILD:-build}
./scripts/install_deps.sh
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target remat_cli_main >/dev/null
out=results/teaching
plots=experiments/plots
mkdir -p "$out"
strategies=(store-all sqrt chen-greedy revolve optimal greedy)
for s in "${strategies[@]}"; do
  budget=(--budget "$BUDGET")
  [[ $s == store-all ]] && budget=()
  "$BUILD/bin/remat" explain --model "$MODEL" --strategy "$s" "${budget[@]}" --format json \
    --memory-csv "$out/$s.csv" > "$out/$s.json"
  "$BUILD/bin/remat" explain --model "$MODEL" --strategy "$s" "${budget[@]}" > "$out/$s.txt"
  /usr/bin/python3 "$plots/schedule_diagram.py" "$out/$s.json" "$out/schedule_$s.png"
done
/usr/bin/python3 "$plots/memory_over_time.py" "$out/revolve.json" "$out/memory_over_time.png"
/usr/bin/python3 "$plots/strategies_side_by_side.py" "$out/strategies_side_by_side.png" \
  $(for s in "${strategies[@]}"; do echo "$out/$s.json"; done)
echo "[teaching_figures] wrote $out/memory_over_time.png, $out/schedule_<strategy>.png and $out/strategies_side_by_side.png"
