#!/usr/bin/env python3
"""Contract: compare every non-solver strategy of remat over budgets (100%, 60%, 40%,
25% of store-all's simulated peak) on two small zoo models (an MLP and a residual
MLP; --quick makes them tiny). Each (model, strategy, budget) is planned and run once
on the CPU backend; a row records the planned and measured peak, recomputed ops and
the planned overhead (planned_time / store_all_time - 1). A budget no plan of the
strategy fits is a row with status "infeasible" (and its smallest feasible budget).
Prints a pandas DataFrame and saves a matplotlib plot (Agg backend) of planned overhead
against peak bytes saved to --out (default results/python/compare.png); --csv PATH
also writes the table. Exits 1 when a measured peak differs from its prediction.

Run: PYTHONPATH=build/python /usr/bin/python3 examples/python/compare_strategies.py --quick
"""

import argparse
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import remat  # noqa: E402

BUDGETS = ["100%", "60%", "40%", "25%"]
MODELS = ["mlp:layers=16,width=64,batch=16", "resmlp:layers=12,width=64,batch=16"]
QUICK_MODELS = ["mlp:layers=8,width=16,batch=4", "resmlp:layers=6,width=8,batch=2"]


def sweep(specs, budgets):
    """One row per (model, strategy, budget): a list of dicts."""
    rows = []
    for spec in specs:
        model = remat.build_model(spec)
        for name in remat.strategy_names(include_solvers=False):
            strategy = remat.make_strategy(name)
            for budget in budgets:
                row = {"model": model.spec, "strategy": name, "budget": budget}
                try:
                    report = remat.plan(model, strategy, budget=budget)
                except remat.InfeasibleBudget as e:
                    row.update(status="infeasible", min_feasible_bytes=e.min_feasible_bytes)
                    rows.append(row)
                    continue
                step = remat.run(model, report)
                saved = report.store_all_peak - report.peak_bytes
                row.update(
                    status="ok",
                    setting=report.setting,
                    budget_bytes=report.budget_bytes,
                    peak_planned=report.peak_bytes,
                    peak_measured=step.peak_bytes,
                    store_all_peak=report.store_all_peak,
                    bytes_saved=saved,
                    recomputed_ops=report.recomputed_ops,
                    planned_overhead=report.planned_time / report.store_all_time - 1.0,
                )
                rows.append(row)
    return rows


def plot(frame, out):
    """Planned overhead against peak bytes saved, one panel per model."""
    ok = frame[frame["status"] == "ok"]
    models = list(frame["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, spec in zip(axes[0], models):
        part = ok[ok["model"] == spec]
        markers = "osD^vP*X"
        for k, (name, group) in enumerate(part.groupby("strategy")):
            group = group.sort_values("bytes_saved")
            # Distinct markers and some transparency: strategies that agree stay visible.
            ax.plot(group["bytes_saved"], 100 * group["planned_overhead"], marker=markers[k % len(markers)],
                    alpha=0.75, label=name)
        ax.set_title(spec, fontsize=9)
        ax.set_xlabel("peak bytes saved vs store-all")
        ax.set_ylabel("planned overhead (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models (seconds)")
    parser.add_argument("--out", default="results/python/compare.png", help="plot path (PNG)")
    parser.add_argument("--csv", default=None, help="also write the table as CSV")
    args = parser.parse_args(argv)

    frame = pd.DataFrame(sweep(QUICK_MODELS if args.quick else MODELS, BUDGETS))
    # Byte and op counts stay integers next to the infeasible rows' gaps.
    for column in ("budget_bytes", "peak_planned", "peak_measured", "store_all_peak", "bytes_saved",
                   "recomputed_ops", "min_feasible_bytes"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_columns", None):
        print(frame.drop(columns=["store_all_peak"], errors="ignore").to_string(index=False))
    out = pathlib.Path(args.out)
    plot(frame, out)
    print(f"plot: {out}")
    if args.csv:
        pathlib.Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.csv, index=False)
    ok = frame[frame["status"] == "ok"]
    mismatched = ok[ok["peak_planned"] != ok["peak_measured"]]
    if len(mismatched):
        print(f"{len(mismatched)} rows measured a peak other than the planned one", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
