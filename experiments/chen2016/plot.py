#!/usr/bin/python3
"""Contract: draws paper_chen2016's results. Usage: plot.py OUT_DIR.
Reads OUT_DIR/depth.csv and OUT_DIR/fits.csv; writes OUT_DIR/chen2016.png:
(left) peak budgeted memory against depth, log-log, filled markers executed, hollow
markers simulated, dashed lines the least-squares power-law fits (exponent in the
legend); (middle) measured median step time against depth; (right) time overhead
against store-all, planned (analytic) and measured."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "plots"))
from paper_figures import paper_out_dir, plt, read_table, save_figure  # noqa: E402

COLORS = {"store-all": "tab:blue", "sqrt": "tab:orange", "chen-greedy": "tab:green"}
MARKERS = {"mlp": "o", "resmlp": "s"}


def main() -> int:
    out = paper_out_dir("chen2016")
    if out is None:
        return 2
    rows = read_table(out, "depth")
    fits = read_table(out, "fits")
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(16, 4.8))
    for fam in MARKERS:
        for strat, color in COLORS.items():
            pts = [r for r in rows if r["family"] == fam and r["strategy"] == strat]
            if not pts:
                continue
            ex = [r for r in pts if r["mode"] == "executed"]
            sim = [r for r in pts if r["mode"] == "simulated"]
            fit = next(f for f in fits if f["family"] == fam and f["strategy"] == strat)
            a.plot([int(r["depth"]) for r in ex], [int(r["peak_bytes_measured"]) / 2**20 for r in ex], MARKERS[fam],
                   color=color, label=f"{fam} {strat}: depth^{float(fit['exponent']):.2f}")
            a.plot([int(r["depth"]) for r in sim], [int(r["peak_bytes_predicted"]) / 2**20 for r in sim], MARKERS[fam],
                   color=color, mfc="none")
            ds = [int(r["depth"]) for r in pts]
            a.plot(ds, [float(fit["prefactor_bytes"]) * d ** float(fit["exponent"]) / 2**20 for d in ds], "--",
                   color=color, lw=0.8)
            b.plot([int(r["depth"]) for r in ex], [float(r["median_seconds"]) for r in ex], MARKERS[fam] + "-",
                   color=color, label=f"{fam} {strat}", lw=1)
            if strat != "store-all":
                c.plot([int(r["depth"]) for r in pts], [100 * float(r["planned_overhead"]) for r in pts], MARKERS[fam] + ":",
                       color=color, mfc="none", label=f"{fam} {strat} planned")
                c.plot([int(r["depth"]) for r in ex], [100 * float(r["measured_overhead"]) for r in ex], MARKERS[fam] + "-",
                       color=color, label=f"{fam} {strat} measured")
    a.set_xscale("log", base=2)
    a.set_yscale("log")
    a.set_xlabel("depth (layers)")
    a.set_ylabel("peak budgeted memory (MiB)")
    a.set_title("memory vs depth (filled: executed, hollow: simulated)")
    a.legend(fontsize=7)
    b.set_xscale("log", base=2)
    b.set_yscale("log")
    b.set_xlabel("depth (layers)")
    b.set_ylabel("median step time (s)")
    b.set_title("measured step time (executed depths)")
    b.legend(fontsize=7)
    c.set_xscale("log", base=2)
    c.set_xlabel("depth (layers)")
    c.set_ylabel("time overhead vs store-all (%)")
    c.set_title("overhead: planned (dotted) and measured (solid)")
    c.axhline(33, color="gray", ls="--", lw=0.8)
    c.legend(fontsize=6, ncol=2)
    for ax in (a, b, c):
        ax.grid(alpha=0.3, which="both")
    save_figure(fig, out, "chen2016.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
