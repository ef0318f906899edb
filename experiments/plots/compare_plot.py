#!/usr/bin/python3
"""Draws `remat compare`'s CSV: peak memory (measured) against time overhead, one
point per strategy and setting. Usage: compare_plot.py CSV PNG [TITLE]."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> int:
    if len(sys.argv) < 3:
        print("[compare_plot] usage: compare_plot.py CSV PNG [TITLE]", file=sys.stderr)
        return 2
    rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["feasible"] in ("true", "1", "True")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = {"store-all": "s", "sqrt": "o", "chen-greedy": "v", "revolve": "^", "optimal": "*", "greedy": "D"}
    for name in markers:
        pts = [r for r in rows if r["strategy"] == name]
        if not pts:
            continue
        ax.scatter([100 * float(r["time_overhead"]) for r in pts],
                   [int(r["peak_bytes_measured"]) / 2**20 for r in pts],
                   marker=markers[name], s=60, label=name)
    ax.set_xlabel("time overhead vs store-all (%)")
    ax.set_ylabel("peak budgeted memory, measured (MiB)")
    ax.set_title(sys.argv[3] if len(sys.argv) > 3 else "remat compare")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
