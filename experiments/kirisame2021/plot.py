#!/usr/bin/python3
"""Contract: draws paper_kirisame2021's results. Usage: plot.py OUT_DIR.
Reads OUT_DIR/slowdown.csv and OUT_DIR/unit_chain.csv; writes
OUT_DIR/kirisame2021.png (one panel per model: slowdown against budget ratio per
heuristic, planned as lines, measured as markers; infeasible or thrashing budgets
are absent, as in DTR's figures) and OUT_DIR/unit_chain.png (recomputed ops / N
against N at budgets of 2 sqrt(N) and 4 sqrt(N) activations)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "plots"))
from paper_figures import paper_out_dir, plt, read_table, save_figure  # noqa: E402

COLORS = {"dtr": "tab:red", "dtr-eq": "tab:orange", "dtr-local": "tab:green", "lru": "tab:blue", "size": "tab:purple",
          "msps": "tab:brown", "revolve": "black"}
# Heuristics often tie (same plan); distinct markers and dashes keep tied lines visible.
MARKERS = {"dtr": "o", "dtr-eq": "x", "dtr-local": "s", "lru": "+", "size": "^", "msps": "v", "revolve": "D"}
DASHES = {"dtr": "-", "dtr-eq": "--", "dtr-local": "-", "lru": "--", "size": "-", "msps": "--", "revolve": "-"}


def main() -> int:
    out = paper_out_dir("kirisame2021")
    if out is None:
        return 2
    rows = read_table(out, "slowdown")
    models = list(dict.fromkeys(r["model"] for r in rows))
    cols = 2
    nrows = (len(models) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(12, 4.2 * nrows), squeeze=False)
    for k, model in enumerate(models):
        ax = axes[k // cols][k % cols]
        for h, color in COLORS.items():
            pts = [r for r in rows if r["model"] == model and r["heuristic"] == h and r["status"] == "ok"]
            if not pts:
                continue
            x = [float(r["budget_ratio"]) for r in pts]
            ax.plot(x, [float(r["planned_slowdown"]) for r in pts], DASHES[h], color=color, label=f"{h} planned")
            ax.plot(x, [float(r["measured_slowdown"]) for r in pts], MARKERS[h], color=color, ms=5, alpha=0.7)
        ax.invert_xaxis()
        ax.set_xlabel("budget / store-all peak")
        ax.set_ylabel("slowdown (time / store-all's)")
        ax.set_title(model, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="lines: planned, dots: measured", title_fontsize=7)
    for k in range(len(models), nrows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle("DTR heuristics: slowdown against memory budget")
    save_figure(fig, out, "kirisame2021.png")

    unit = read_table(out, "unit_chain", only_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, c in zip(axes, ("2", "4")):
        for h, color in COLORS.items():
            pts = [r for r in unit if r["strategy"] == h and float(r["c"]) == float(c)]
            if not pts:
                continue
            ax.plot([int(r["N"]) for r in pts], [float(r["recomputed_per_N"]) for r in pts], MARKERS[h], ls=DASHES[h],
                    color=color, label=h, ms=7, mfc="none")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N (layers)")
        ax.set_ylabel("recomputed ops / N")
        ax.set_title(f"linear chain, budget {c} sqrt(N) activations\n(missing: infeasible or skipped)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    save_figure(fig, out, "unit_chain.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
