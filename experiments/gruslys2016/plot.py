#!/usr/bin/python3
"""Contract: draws paper_gruslys2016's results. Usage: plot.py OUT_DIR.
Reads OUT_DIR/budgets.csv; writes OUT_DIR/gruslys2016.png: time overhead against
store-all (planned: hollow markers and lines; measured: filled markers) against the
peak memory as a fraction of store-all's, per strategy, with the paper's headline
point (5% of the memory, +33% time) marked."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "plots"))
from paper_figures import paper_out_dir, plt, read_table, save_figure  # noqa: E402

STYLE = {"optimal": ("tab:red", "*"), "revolve": ("tab:blue", "^"), "sqrt": ("tab:orange", "o"),
         "store-all": ("black", "s")}


def main() -> int:
    out = paper_out_dir("gruslys2016")
    if out is None:
        return 2
    rows = read_table(out, "budgets", only_ok=True)
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
    save_figure(fig, out, "gruslys2016.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
