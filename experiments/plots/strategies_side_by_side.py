#!/usr/bin/python3
"""Contract: every strategy on one model at one budget, in one figure. Takes
several `remat explain --format json` files (one per strategy) and draws small
multiples of memory over time (memory_over_time.draw: bytes live after each
instruction, stacked by category) on shared axes, so that both the height (peak
memory) and the length (instructions, longer with recomputation) compare at a
glance. Each panel's title gives its peak and recomputed ops. Writes a PNG.
Usage: strategies_side_by_side.py OUTPUT.png INPUT.json [INPUT.json ...] [--title TEXT]
"""
import argparse
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from explain_data import CATEGORIES, COLORS, kib, load
from memory_over_time import draw
from matplotlib.patches import Patch


def main() -> int:
    p = argparse.ArgumentParser(description="Small multiples of memory over time, one per strategy")
    p.add_argument("output")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--title")
    a = p.parse_args()
    plans = [load(path) for path in a.inputs]
    cols = min(3, len(plans))
    rows = math.ceil(len(plans) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows + 0.8), sharex=True, sharey=True, squeeze=False)
    budgets = {pl["budget"] for pl in plans if pl["budget"]}
    for ax, plan in zip(axes.flat, plans):
        # A plan without a budget (store-all, the baseline) has no budget line of its own.
        draw(ax, plan, show_legend=False, budget=plan["budget"], compact=True)
        over = " (unbudgeted baseline)" if not plan["budget"] and budgets else ""
        ax.set_title(f"{plan['strategy']}{over}\npeak {kib(plan['peak']):.1f} KiB, {plan['recomputed_ops']} recomputed ops",
                     fontsize=10)
    longest = max(len(plan["rows"]) for plan in plans)
    axes.flat[0].set_xlim(0, longest)  # shared: a longer program (more recomputation) reads as a longer plot
    for ax in axes.flat[len(plans):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("Program instruction")
    for ax in axes[:, 0]:
        ax.set_ylabel("live bytes (KiB)")
    handles = [Patch(color=COLORS[c], label=c) for c in CATEGORIES]
    handles += [plt.Line2D([], [], color="crimson", linestyle="--", label="budget"),
                plt.Line2D([], [], color="black", linestyle=":", label="peak"),
                plt.Line2D([], [], color="crimson", marker="|", linestyle="none", label="recomputation")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    model = plans[0]["model"]
    budget = f" at budget {kib(max(budgets)):.1f} KiB" if budgets else ""
    fig.suptitle(a.title or f"Every strategy on {model}{budget}", fontsize=12)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(a.output, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
