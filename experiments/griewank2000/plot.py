#!/usr/bin/python3
"""Contract: draws paper_griewank2000's results. Usage: plot.py OUT_DIR.
Reads OUT_DIR/counts.csv and OUT_DIR/heat.csv; writes OUT_DIR/griewank2000.png:
(left) forward steps per step, (p(n, s) + n) / n, against slots s, one line per n
(the closed form), with markers where the replayed schedule was counted;
(right) the heat model: recomputed ops measured, simulated and counted from the
schedule, per (steps, slots)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "plots"))
from paper_figures import paper_out_dir, plt, read_table, save_figure  # noqa: E402


def main() -> int:
    out = paper_out_dir("griewank2000")
    if out is None:
        return 2
    counts = read_table(out, "counts")
    heat = read_table(out, "heat")
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.8))
    for n in sorted({int(r["n"]) for r in counts}):
        pts = [r for r in counts if int(r["n"]) == n]
        s = [int(r["s"]) for r in pts]
        line, = a.plot(s, [(int(r["p_closed_form"]) + n) / n for r in pts], "-", label=f"n = {n}")
        rep = [r for r in pts if r["p_schedule"] != ""]
        a.plot([int(r["s"]) for r in rep], [(int(r["p_schedule"]) + n) / n for r in rep], "o", ms=3,
               color=line.get_color())
    a.set_yscale("log")
    a.set_xlabel("checkpoint slots s (slot 0 holds x(0))")
    a.set_ylabel("forward steps / n = (p(n, s) + n) / n")
    a.set_title("Revolve: closed form (lines) and replayed schedules (dots)")
    a.grid(alpha=0.3, which="both")
    a.legend()
    labels = [f"n={r['steps']}\ns={r['slots']}" for r in heat]
    x = range(len(heat))
    w = 0.27
    b.bar([i - w for i in x], [int(r["recomputed_ops_measured"]) for r in heat], w, label="measured")
    b.bar([i for i in x], [int(r["recomputed_ops_predicted"]) for r in heat], w, label="simulated (plan)")
    b.bar([i + w for i in x], [int(r["ops_closed_form"]) for r in heat], w, label="p(L, s) x ops per step")
    b.set_xticks(list(x))
    b.set_xticklabels(labels, fontsize=8)
    b.set_yscale("log")
    b.set_ylabel("recomputed ops in one step")
    b.set_title("heat model under revolve: recomputed ops")
    b.grid(alpha=0.3, axis="y")
    b.legend()
    save_figure(fig, out, "griewank2000.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
