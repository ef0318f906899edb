#!/usr/bin/python3
"""Contract: memory over time for one plan. Reads `remat explain`'s JSON or
--memory-csv and draws the budgeted bytes live after each Program instruction,
stacked by category (input, activation, saved, gradient; workspace is what an
instruction holds while it runs), with the budget and the measured peak as lines
and recomputations marked under the axis. Writes a PNG (matplotlib, Agg).
Usage: memory_over_time.py INPUT.json|INPUT.csv OUTPUT.png [--title TEXT] [--budget BYTES]
"""
import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from explain_data import CATEGORIES, COLORS, kib, load


def draw(ax, data, show_legend=True, budget=None, compact=False):
    """Draws one plan's memory on `ax` (shared with strategies_side_by_side.py)."""
    rows = data["rows"]
    x = list(range(len(rows) + 1))
    # One step per instruction: the state after instruction i spans [i, i+1).
    series = [[kib(r[c]) for r in rows] + [kib(rows[-1][c]) if rows else 0] for c in CATEGORIES]
    ax.stackplot(x, *series, step="post", colors=[COLORS[c] for c in CATEGORIES], labels=CATEGORIES, linewidth=0)
    budget = budget if budget is not None else data.get("budget")
    if budget:
        ax.axhline(kib(budget), color="crimson", linestyle="--", linewidth=1.2, label=f"budget {kib(budget):.1f} KiB")
    ax.axhline(kib(data["peak"]), color="black", linestyle=":", linewidth=1.0, label=f"peak {kib(data['peak']):.1f} KiB")
    recomputes = [i + 0.5 for i, r in enumerate(rows) if r["recompute"]]
    if recomputes:
        ax.plot(recomputes, [0] * len(recomputes), marker="|", linestyle="none", color="crimson", markersize=8 if compact else 10,
                markeredgewidth=1.2, clip_on=False, label="recomputation")
    # The reverse sweep starts at the seed of the loss gradient.
    seed = next((i for i, r in enumerate(rows) if r["kind"] == "seed_grad"), None)
    if seed is not None:
        ax.axvline(seed, color="dimgray", linewidth=0.8)
        at_top = ax.get_xaxis_transform()  # x in data, y in axes fraction
        ax.text(seed, 0.985, " backward →", va="top", ha="left", fontsize=7 if compact else 9, color="dimgray", transform=at_top)
        ax.text(seed, 0.985, "← forward ", va="top", ha="right", fontsize=7 if compact else 9, color="dimgray", transform=at_top)
    ax.set_xlim(0, max(1, len(rows)))
    top = max([data["peak"], budget or 0] + [r["peak_bytes"] for r in rows])
    ax.set_ylim(0, max(ax.get_ylim()[1], kib(top) * 1.12))  # head room for the labels
    ax.grid(alpha=0.25)
    if show_legend:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8, ncol=9, frameon=False)


def main() -> int:
    p = argparse.ArgumentParser(description="Memory over time of one plan, from remat explain's JSON or CSV")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--title")
    p.add_argument("--budget", type=int, help="budget line in bytes (the JSON carries its own)")
    a = p.parse_args()
    data = load(a.input)
    fig, ax = plt.subplots(figsize=(11, 5.2))
    draw(ax, data, budget=a.budget)
    ax.set_xlabel("Program instruction (compute, free, seed_grad, backward, free_grad)")
    ax.set_ylabel("budgeted bytes live (KiB)")
    ax.set_title(a.title or f"{data['strategy']} on {data['model']}: {data['recomputed_ops']} recomputed ops, "
                 f"peak {kib(data['peak']):.1f} KiB")
    fig.tight_layout()
    fig.savefig(a.output, dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
