#!/usr/bin/python3
"""Contract: the schedule diagram of the checkpointing literature, from
`remat explain --format json`: stage index (up) against time step (right), one
cell per step, forward (first run of a stage), recomputation and backward in
distinct colours; a dot marks a stage run keeping its input as a checkpoint (F_ck)
and hatching a stage run keeping its tape (F_all). For chain strategies the steps
are the stage actions and a lower panel shows the stage model's memory after
each; for node-level plans (greedy) consecutive instructions of one stage and
kind form one step. Writes a PNG (matplotlib, Agg).
Usage: schedule_diagram.py INPUT.json OUTPUT.png [--title TEXT]
"""
import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch, Rectangle
from matplotlib.lines import Line2D

from explain_data import kib, load

KIND_COLORS = {"forward": "#1565c0", "recompute": "#ffb300", "backward": "#c62828"}


def stage_steps(data):
    """A list of (stage, kind, action) with kind forward, recompute or backward."""
    schedule = data["schedule"]
    if schedule:
        steps = []
        for a in schedule["actions"]:
            if a["action"] == "discard":
                continue
            kind = "backward" if a["action"] == "B" else ("recompute" if a["recompute"] else "forward")
            steps.append((a["stage"], kind, a["action"]))
        return steps
    tape = data.get("tape") or []
    steps = []
    for r in data["rows"]:
        if r["kind"] == "compute":
            if tape and tape[r["node"]]["kind"] != "op":
                continue  # copying an input is no stage's work
            kind = "recompute" if r["recompute"] else "forward"
        elif r["kind"] in ("backward", "seed_grad"):
            kind = "backward"
        else:
            continue
        if r["stage"] < 0:
            continue
        if steps and steps[-1][0] == r["stage"] and steps[-1][1] == kind:
            continue
        steps.append((r["stage"], kind, "B" if kind == "backward" else "F"))
    return steps


def draw(ax, data, compact=False):
    steps = stage_steps(data)
    for t, (stage, kind, action) in enumerate(steps):
        ax.add_patch(Rectangle((t, stage - 0.38), 1, 0.76, facecolor=KIND_COLORS[kind], edgecolor="white",
                               linewidth=0.3, hatch="////" if action == "F_all" else None))
        if action == "F_ck":
            ax.plot(t + 0.5, stage, marker="o", color="black", markersize=2.5 if compact else 3.5)
    top = max((s for s, _, _ in steps), default=0)
    ax.set_xlim(0, max(1, len(steps)))
    ax.set_ylim(-0.7, top + 0.7 + max(1.5, 0.12 * top))  # head room for the legend
    ax.set_yticks(range(0, top + 1, max(1, (top + 1) // 14)))
    ax.set_ylabel("stage i (the top one is the loss)")
    ax.grid(alpha=0.2)
    return steps


def main() -> int:
    p = argparse.ArgumentParser(description="Schedule diagram (stage against time step) from remat explain's JSON")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--title")
    a = p.parse_args()
    if not a.input.endswith(".json"):
        raise SystemExit("[schedule_diagram] needs explain's JSON (remat explain --format json), not a CSV")
    data = load(a.input)
    schedule = data["schedule"]
    if schedule:
        fig, (ax, mem) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    else:
        # Node-level plans (greedy): the memory panel is per instruction (its own x axis).
        fig, (ax, mem) = plt.subplots(2, 1, figsize=(11, 6.5), gridspec_kw={"height_ratios": [3, 1]})
    steps = draw(ax, data)
    n_recompute = sum(1 for _, k, _ in steps if k == "recompute")
    unit = "stage actions" if schedule else "steps"
    ax.set_title(a.title or f"{data['strategy']} on {data['model']}: {len(steps)} {unit}, {n_recompute} recomputed")
    handles = [Patch(color=KIND_COLORS["forward"], label="forward"), Patch(color=KIND_COLORS["recompute"], label="recomputation"),
               Patch(color=KIND_COLORS["backward"], label="backward")]
    if schedule:
        handles += [Line2D([], [], marker="o", color="black", linestyle="none", markersize=4, label="F_ck: keeps x(i)"),
                    Patch(facecolor="white", edgecolor="black", hatch="////", label="F_all: keeps the tape"),
                    Patch(facecolor="white", edgecolor="black", label="plain: F_n, keeps nothing")]
    ax.legend(handles=handles, loc="upper left", fontsize=8, ncol=min(6, len(handles)), framealpha=0.9)
    if not schedule:
        # Node-level plans: live bytes after each instruction.
        ax.set_xlabel("time step (a run of one stage's instructions of one kind)")
        values = [kib(r["live_bytes"]) for r in data["rows"]]
        mem.step(range(len(values)), values, where="mid", color="black", linewidth=1)
        ylabel, xlabel = "live KiB", "instruction"
    else:
        # Stage plans: the stage model's memory after each action.
        after = [act["memory_after"] for act in schedule["actions"] if act["action"] != "discard"]
        mem.step(range(len(after) + 1), [kib(v) for v in after] + [kib(after[-1])], where="post", color="black", linewidth=1)
        ylabel, xlabel = "stage model\nKiB after", "time step (stage action)"
    if data.get("budget"):
        mem.axhline(kib(data["budget"]), color="crimson", linestyle="--", linewidth=1, label="budget")
        mem.legend(loc="upper right", fontsize=8)
    mem.set_ylabel(ylabel)
    mem.set_ylim(bottom=0)
    mem.grid(alpha=0.25)
    mem.set_xlabel(xlabel)
    fig.tight_layout()
    fig.savefig(a.output, dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
