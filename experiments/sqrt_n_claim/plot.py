#!/usr/bin/python3
"""Contract: draws paper_sqrt_n_claim's results. Usage: plot.py OUT_DIR.
Reads OUT_DIR/sqrt_n_claim.csv and OUT_DIR/trace.csv; writes OUT_DIR/sqrt_n_claim.png:
(left) budgeted live bytes after each instruction of one step, store-all against sqrt,
for each model; (right) memory reduction (store-all peak / sqrt peak, total and saved
values) and time overhead (planned and measured) per model."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "plots"))
from paper_figures import paper_out_dir, plt, read_table, save_figure  # noqa: E402


def main() -> int:
    out = paper_out_dir("sqrt_n_claim")
    if out is None:
        return 2
    rows = read_table(out, "sqrt_n_claim")
    trace = read_table(out, "trace")
    models = sorted({r["model"] for r in trace})
    fig, axes = plt.subplots(1, len(models) + 1, figsize=(5 * (len(models) + 1), 4.8))
    for ax, model in zip(axes, models):
        for strategy, style in (("store-all", "-"), ("sqrt", "-")):
            pts = [r for r in trace if r["model"] == model and r["strategy"] == strategy]
            if not pts:
                continue
            n = len(pts)
            ax.plot([int(p["instruction"]) / max(1, n - 1) for p in pts],
                    [int(p["live_bytes"]) / 2**20 for p in pts], style, label=strategy, lw=1.2)
        ax.set_title(f"{model}: live memory during one step")
        ax.set_xlabel("fraction of the step's instructions")
        ax.set_ylabel("budgeted bytes live (MiB)")
        ax.grid(alpha=0.3)
        ax.legend()
    ax = axes[-1]
    sq = [r for r in rows if r["strategy"] == "sqrt"]
    labels = [r["model"].split(":")[0] for r in sq]
    x = range(len(sq))
    w = 0.2
    ax.bar([i - 1.5 * w for i in x], [float(r["memory_ratio"]) for r in sq], w, label="peak ratio (all budgeted)")
    ax.bar([i - 0.5 * w for i in x], [float(r["saved_memory_ratio"]) for r in sq], w, label="peak ratio (saved values)")
    ax2 = ax.twinx()
    ax2.bar([i + 0.5 * w for i in x], [100 * float(r["planned_overhead"]) for r in sq], w, color="tab:green",
            label="planned overhead %")
    ax2.bar([i + 1.5 * w for i in x], [100 * float(r["measured_overhead"] or "nan") for r in sq], w, color="tab:red",
            label="measured overhead %")
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels)
    ax.set_ylabel("store-all peak / sqrt peak (x)")
    ax2.set_ylabel("time overhead vs store-all (%)")
    ax.axhline(10, color="gray", ls=":", lw=1.5)
    ax2.axhline(33, color="gray", ls="--", lw=1)
    ax.set_ylim(0, 12)
    ax2.set_ylim(0, 40)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    ax.set_title("sqrt(n): memory saved and time paid\n(dotted: the claimed 10x, dashed: 33%)")
    save_figure(fig, out, "sqrt_n_claim.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
