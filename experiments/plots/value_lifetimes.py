#!/usr/bin/python3
"""Contract: the value-lifetime picture of one plan. Usage: value_lifetimes.py PLAN.json OUT.png
PLAN.json is `remat explain --format json`. Top panel: one row per tape value (and one per
gradient), one bar per residency, from the instruction that allocates it to the last one
after which it is still resident; a value freed and recomputed later gets a second bar in
the same row, marked as a recomputation (hatched). Bars are coloured by category (input,
kept, checkpoint, recomputed, gradient). Bottom panel: live budgeted bytes after each
instruction, with the budget as a line when the plan has one. Lifetimes are read from the
`resident` lists of the program rows, so the bars and the byte curve come from the same
trace (the sum of a row's resident sizes is its live bytes, less the workspace).
Errors are SystemExit("[value_lifetimes] ...")."""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from explain_data import load, kib

COLORS = {"input": "#9e9e9e", "kept": "#90caf9", "checkpoint": "#1565c0", "recomputed": "#c62828",
          "gradient": "#ef6c00"}


def lifetimes(rows):
    """[(key, start, end, category)] with key = (node, is_gradient): maximal runs of rows in
    which the value is resident."""
    open_runs, done = {}, []
    for i, r in enumerate(rows):
        if "resident" not in r:
            raise SystemExit("[value_lifetimes] the plan's rows have no 'resident' lists: write it with "
                             "`remat explain --format json` from this version")
        now = {}
        for v in r["resident"]:
            key = (v["node"], v["category"] == "gradient")
            now[key] = v["category"]
        for key in list(open_runs):
            if key not in now:
                start, cat = open_runs.pop(key)
                done.append((key, start, i - 1, cat))
        for key, cat in now.items():
            if key not in open_runs:
                open_runs[key] = (i, cat)
    for key, (start, cat) in open_runs.items():
        done.append((key, start, len(rows) - 1, cat))
    return done


def main():
    if len(sys.argv) != 3:
        raise SystemExit("[value_lifetimes] usage: value_lifetimes.py PLAN.json OUT.png")
    plan = load(sys.argv[1])
    rows = plan["rows"]
    runs = lifetimes(rows)
    keys = sorted({k for k, *_ in runs}, key=lambda k: (k[1], k[0] if not k[1] else -k[0]))
    y = {k: n for n, k in enumerate(keys)}
    labels = {}
    for r in rows:
        labels.setdefault(r["node"], r["label"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 3 + 0.22 * len(keys)), sharex=True,
                                      gridspec_kw={"height_ratios": [max(3, 0.22 * len(keys)), 2]})
    seen = {}
    for key, start, end, cat in runs:
        again = seen.get(key, 0) > 0
        seen[key] = seen.get(key, 0) + 1
        top.barh(y[key], end - start + 1, left=start - 0.5, height=0.7, color=COLORS.get(cat, "#bdbdbd"),
                 hatch="//" if again or cat == "recomputed" else None, edgecolor="black", linewidth=0.3)
    top.set_yticks(range(len(keys)))
    top.set_yticklabels([("grad " if k[1] else "") + labels.get(k[0], f"n{k[0]}") for k in keys], fontsize=6)
    top.invert_yaxis()
    top.set_ylabel("value")
    top.legend(handles=[Patch(color=c, label=n) for n, c in COLORS.items()] +
               [Patch(facecolor="white", edgecolor="black", hatch="//", label="recomputed residency")],
               fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    budget = plan["budget"]
    title = f"{plan['strategy']} on {plan['model']}: peak {kib(plan['peak']):.1f} KiB, {plan['recomputed_ops']} recomputed ops"
    if budget:
        title += f", budget {kib(budget):.1f} KiB"
    top.set_title(title, fontsize=9)
    x = list(range(len(rows)))
    bottom.step(x, [kib(r["live_bytes"]) for r in rows], where="mid", color="black", linewidth=1)
    if budget:
        bottom.axhline(kib(budget), color="tab:red", linestyle="--", linewidth=1, label="budget")
        bottom.legend(fontsize=7)
    bottom.set_xlabel("instruction")
    bottom.set_ylabel("live KiB")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=120)


if __name__ == "__main__":
    main()
