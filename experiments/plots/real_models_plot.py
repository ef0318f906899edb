#!/usr/bin/python3
"""Contract: draws `remat compare --budgets least --json` on several imported models, one
panel per model: each strategy's least feasible peak (as a share of store-all's, measured)
against its planned time overhead (log scale), with store-all at (0, 100%).
Usage: real_models_plot.py PNG JSON... (each JSON one compare run; the panel is named
after the file). Exit status 2 on a bad command line or an unreadable file."""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paper_figures import plt  # noqa: E402

MARKERS = {"sqrt": "o", "chen-greedy": "v", "revolve": "^", "optimal": "*", "greedy": "D",
           "checkmate-lp": "P", "checkmate": "X"}


def main() -> int:
    if len(sys.argv) < 3:
        print("[real_models_plot] usage: real_models_plot.py PNG JSON...", file=sys.stderr)
        return 2
    runs = []
    for path in sys.argv[2:]:
        try:
            with open(path) as f:
                runs.append((os.path.splitext(os.path.basename(path))[0], json.load(f)))
        except (OSError, ValueError) as e:
            print(f"[real_models_plot] {path}: {e}", file=sys.stderr)
            return 2
    cols = min(3, len(runs))
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    for ax, (name, run) in zip(axes.flat, runs):
        full = run["store_all_peak_bytes"]
        for row in run["rows"]:
            if not row.get("feasible") or row["strategy"] not in MARKERS:
                continue
            hollow = row["strategy"] in ("greedy", "checkmate")  # often on optimal's point: drawn around it
            ax.scatter(max(100 * row["planned_overhead"], 0.1), 100 * row["peak_bytes_measured"] / full,
                       marker=MARKERS[row["strategy"]], s=120 if hollow else 55, label=row["strategy"],
                       facecolors="none" if hollow else None, edgecolors="purple" if hollow else None,
                       zorder=3 if hollow else 2)
        ax.set_xscale("log")
        ax.set_ylim(0, 105)
        ax.set_title(f"{name} (store-all {full / 2**20:.1f} MiB)", fontsize=10)
        ax.set_xlabel("planned time overhead (%)")
        ax.set_ylabel("least feasible peak (% of store-all)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    fig.suptitle("every strategy at its own smallest feasible budget (measured peaks = planned)", fontsize=11)
    fig.tight_layout()
    fig.savefig(sys.argv[1], dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
