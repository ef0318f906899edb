"""Contract: reads what `remat explain` writes, for the teaching plots.
load(path) accepts explain's JSON (--format json) or its CSV (--memory-csv) and
returns a dict: strategy, model, budget (bytes or None), peak, recomputed_ops,
schedule (explain's stage schedule or None), chain and tape (JSON only) and rows, one per Program instruction with
kind, node, label, stage, recompute and the bytes of every category in
CATEGORIES plus live_bytes and peak_bytes. Errors are SystemExit("[explain_data] ...").
"""
import csv
import json
import os

# Budgeted categories in stacking order (bottom to top), with their colours.
CATEGORIES = ["input", "activation", "saved", "gradient", "workspace"]
COLORS = {"input": "#9e9e9e", "activation": "#90caf9", "saved": "#1565c0",
          "gradient": "#ef6c00", "workspace": "#8e24aa"}
INT_FIELDS = CATEGORIES + ["index", "node", "stage", "live_bytes", "peak_bytes"]


def load(path):
    if not os.path.exists(path):
        raise SystemExit(f"[explain_data] no such file: {path}")
    if path.endswith(".csv"):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            for k in INT_FIELDS:
                r[k] = int(r[k])
            r["recompute"] = r["recompute"] in ("1", "true", "True")
        name = os.path.splitext(os.path.basename(path))[0]
        return {"strategy": name, "model": "", "budget": None,
                "peak": max((r["peak_bytes"] for r in rows), default=0),
                "recomputed_ops": sum(1 for r in rows if r["recompute"]), "schedule": None, "chain": None,
                "tape": None, "rows": rows}
    try:
        with open(path) as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise SystemExit(f"[explain_data] {path} is not explain's JSON: {e}")
    if "error" in doc:
        raise SystemExit(f"[explain_data] {path} holds an error, not a plan: {doc['error']}")
    if "program" not in doc:
        raise SystemExit(f"[explain_data] {path} has no 'program': write it with `remat explain --format json`")
    return {"strategy": doc["strategy"], "model": doc.get("model", ""), "budget": doc.get("budget_bytes"),
            "peak": doc["summary"]["peak_bytes"], "recomputed_ops": doc["summary"]["recomputed_ops"],
            "schedule": doc.get("schedule"), "chain": doc.get("chain"), "tape": doc.get("tape"),
            "rows": doc["program"]["instructions"]}


def kib(b):
    return b / 1024.0
