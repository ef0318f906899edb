#!/usr/bin/python3
"""Contract: draws paper_jain2020's results. Usage: plot.py OUT_DIR.
Reads OUT_DIR/overhead.csv; writes OUT_DIR/jain2020.png: one panel per model, planned
overhead (lines) and measured overhead (dots) against budget / store-all's peak for every
strategy, refused budgets absent (as in Checkmate's Figure 5)."""
import os
import sys
import textwrap

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "plots"))
from paper_figures import paper_out_dir, plt, read_table, save_figure  # noqa: E402

STYLE = {"store-all": ("black", "o", "-"), "sqrt": ("tab:gray", "s", "--"), "chen-greedy": ("tab:blue", "^", "-"),
         "greedy": ("tab:orange", "v", "--"), "checkmate-lp": ("tab:green", "x", "-"), "checkmate": ("tab:red", "D", "-")}


def main() -> int:
    out = paper_out_dir("jain2020")
    if out is None:
        return 2
    rows = read_table(out, "overhead")
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.2), squeeze=False)
    for k, model in enumerate(models):
        ax = axes[0][k]
        for name, (color, marker, dash) in STYLE.items():
            pts = [r for r in rows if r["model"] == model and r["strategy"] == name and r["status"] == "ok"]
            if not pts:
                continue
            x = [float(r["budget_ratio"]) for r in pts]
            ax.plot(x, [100 * float(r["planned_overhead"]) for r in pts], dash, color=color, label=name)
            measured = [(xi, 100 * float(r["measured_overhead"])) for xi, r in zip(x, pts) if r["measured_overhead"]]
            if measured:
                ax.plot([m[0] for m in measured], [m[1] for m in measured], marker, color=color, ms=5, alpha=0.6)
        ax.invert_xaxis()
        ax.set_xlabel("budget / store-all peak")
        ax.set_ylabel("overhead over store-all (%)")
        nodes = next((r["graph_nodes"] for r in rows if r["model"] == model), "?")
        ax.set_title("\n".join(textwrap.wrap(f"{model} ({nodes} graph nodes)", 48)), fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="lines: planned, dots: measured", title_fontsize=7)
    save_figure(fig, out, "jain2020.png", dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
