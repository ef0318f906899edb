"""Contract: what every experiments/<paper>/plot.py shares, written once.
 - paper_out_dir(paper): the one command-line argument, OUT_DIR (the driver's
   output folder); with any other command line it prints
   "[<paper> plot] usage: plot.py OUT_DIR" on stderr and returns None (the
   script then exits 2).
 - read_table(out, name, only_ok=False): OUT_DIR/<name>.csv as a list of dicts
   (only rows whose status is "ok" when only_ok).
 - plt: matplotlib's pyplot on the headless Agg backend.
 - save_figure(fig, out, name, dpi=110): lays the figure out tightly and writes
   OUT_DIR/<name>.
A plot script imports this module by putting experiments/plots on sys.path."""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

__all__ = ["paper_out_dir", "plt", "read_table", "save_figure"]


def paper_out_dir(paper):
    if len(sys.argv) != 2:
        print(f"[{paper} plot] usage: plot.py OUT_DIR", file=sys.stderr)
        return None
    return sys.argv[1]


def read_table(out, name, only_ok=False):
    with open(os.path.join(out, name + ".csv")) as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if r["status"] == "ok"] if only_ok else rows


def save_figure(fig, out, name, dpi=110):
    fig.tight_layout()
    fig.savefig(os.path.join(out, name), dpi=dpi)
