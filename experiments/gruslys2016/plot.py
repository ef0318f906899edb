#!/usr/bin/python3
"""Contract: draws paper_gruslys2016's results. Usage: plot.py OUT_DIR.
Reads OUT_DIR/budgets.csv; writes OUT_DIR/gruslys2016.png: time overhead against
store-all (planned: hollow markers and lines; measured: filled markers) against the
peak memory as a fraction of store-all's, per strategy, with the paper's headline
point (5% of the memory, +33% time) marked."""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STYLE = {"optimal": ("tab:red", "*"), "revolve": ("tab:blue", "^"), "sqrt": ("tab:orange", "o"),
         "store-all": ("black", "s")}


def main() -> int:
    if len(sys.argv) != 2:
        print("[gruslys2016 plot] usage: plot.py OUT_DIR", file=sys.stderr)
        return 2
    out = sys.argv[1]
    rows = [r for r in csv.DictReader(open(os.path.join(out, "budgets.csv"))) if r["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for strat, (color, marker) in STYLE.items():
        pts = sorted([r for r in rows if r["strategy"] == strat], key=lambda r: float(r["memory_fraction"]))
        if not pts:
            continue
        x = [100 * float(r["memory_fraction"]) for r in pts]
        ax.plot(x, [100 * float(r["planned_overhead"]) for r in pts], marker, ls="-" if strat != "sqrt" else ":",
                color=color, mfc="none", label=f"{strat} planned")
        ax.plot(x, [100 * float(r["measured_overhead"]) for r in pts], marker, ls="none", color=color,
                label=f"{strat} measured")
    ax.plot([5], [33], "kP", ms=12, label="paper: 5% memory, +33% time")
    ax.set_xscale("log")
    ax.set_xlabel("peak memory, % of store-all (log)")
    ax.set_ylabel("time overhead vs store-all (%)")
    ax.set_title("LSTM, T = 1000: overhead against memory")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "gruslys2016.png"), dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
