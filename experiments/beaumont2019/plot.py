#!/usr/bin/python3
"""Contract: draws paper_beaumont2019's results. Usage: plot.py OUT_DIR.
Reads OUT_DIR/makespan.csv; writes OUT_DIR/beaumont2019.png, one column per model:
(top) makespan relative to store-all (lines: profiled node times of the Program;
filled markers: measured median step time) against the node-level peak as a fraction
of store-all's; (bottom) the same for chain strategies in the stage model the DP
optimises (stage makespan against stage peak). sqrt appears once per segment count
(it takes no budget), unconnected."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "plots"))
from paper_figures import paper_out_dir, plt, read_table, save_figure  # noqa: E402

STYLE = {"optimal": ("tab:red", "*"), "revolve": ("tab:blue", "^"), "greedy": ("tab:purple", "D"),
         "sqrt": ("tab:orange", "o"), "store-all": ("black", "s")}


def main() -> int:
    out = paper_out_dir("beaumont2019")
    if out is None:
        return 2
    rows = read_table(out, "makespan", only_ok=True)
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(2, len(models), figsize=(7 * len(models), 9.2), squeeze=False)
    for ax, model in zip(axes[1], models):
        for strat, (color, marker) in STYLE.items():
            pts = sorted([r for r in rows if r["model"] == model and r["strategy"] == strat and r["stage_makespan"]],
                         key=lambda r: float(r["stage_memory_fraction"]))
            if not pts:
                continue
            ax.plot([100 * float(r["stage_memory_fraction"]) for r in pts],
                    [float(r["stage_makespan_ratio"]) for r in pts], marker, ls="none" if strat == "sqrt" else "-",
                    mfc="none", color=color, label=strat)
        ax.set_xlabel("stage-model peak, % of store-all's stage-model peak")
        ax.set_ylabel("stage-model makespan / store-all's")
        ax.set_title("in the chain model the DP optimises (greedy has no stage schedule)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax, model in zip(axes[0], models):
        for strat, (color, marker) in STYLE.items():
            pts = sorted([r for r in rows if r["model"] == model and r["strategy"] == strat],
                         key=lambda r: float(r["memory_fraction"]))
            if not pts:
                continue
            x = [100 * float(r["memory_fraction"]) for r in pts]
            ax.plot(x, [float(r["profiled_ratio"]) for r in pts], marker, ls="none" if strat == "sqrt" else "-",
                    mfc="none", color=color, label=f"{strat} (profiled)")
            ax.plot(x, [1 + float(r["measured_overhead"]) for r in pts], marker, ls="none", color=color, alpha=0.6,
                    label=f"{strat} (measured)")
        ax.set_xlabel("peak memory, % of store-all")
        ax.set_ylabel("makespan / store-all's")
        ax.set_title(model, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("heterogeneous chains: makespan against memory (profiled costs)")
    save_figure(fig, out, "beaumont2019.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
