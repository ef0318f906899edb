#!/usr/bin/python3
"""Contract: draws paper_seed_claims's results. Usage: plot.py OUT_DIR.
Reads OUT_DIR/llm_memory.csv and OUT_DIR/hundred_layers.csv; writes OUT_DIR/seed_claims.png:
(left, middle) total training memory against sequence length for full fine-tuning and
LoRA of the LLaMA-7B shape under store-all, sqrt and optimal at its least memory, naive
(solid) and fused (dashed) attention, with the two device sizes as horizontal lines;
(right) the 100-layer claim: memory reduction against time overhead per strategy,
measured on the CPU and planned at LLM size, with the claim (10x, +33%) marked."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "plots"))
from paper_figures import paper_out_dir, plt, read_table, save_figure  # noqa: E402

GIB = 2**30


def main() -> int:
    out = paper_out_dir("seed_claims")
    if out is None:
        return 2
    rows = read_table(out, "llm_memory")
    hundred = read_table(out, "hundred_layers")
    devices = sorted({(r["device_budget"]) for r in rows if r["device_budget"]},
                     key=lambda d: max(int(r["total"]) for r in rows if r["device_budget"] == d))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    strategies = (("store-all", "tab:red"), ("sqrt", "tab:blue"), ("optimal (least memory)", "tab:green"))
    device_bytes = {}
    for name in devices:
        unit = 2**30 if name.endswith("GiB") else 2**20
        device_bytes[name] = float(name[:-3]) * unit
    for ax, tuning in zip(axes[:2], ("full", "lora16")):
        for strategy, colour in strategies:
            for attention, style in (("naive", "-"), ("fused", "--")):
                pts = sorted((int(r["seq"]), int(r["total"])) for r in rows
                             if r["tuning"] == tuning and r["attention"] == attention and r["strategy"] == strategy)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] / GIB for p in pts], style, color=colour, marker="o", ms=3,
                            label=f"{strategy}, {attention} attention")
        for name, b in device_bytes.items():
            ax.axhline(b / GIB, color="grey", lw=0.8, ls=":")
            ax.text(0.01, b / GIB, f" {name}", transform=ax.get_yaxis_transform(),
                    va="bottom", fontsize=8, color="grey")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (batch 1)")
        ax.set_ylabel("total training memory (GiB)")
        ax.set_title(("full fine-tuning" if tuning == "full" else "LoRA r=16") + ", Adam, bf16 + f32 masters")
        ax.legend(fontsize=7)
    ax = axes[2]
    for where, marker in (("measured", "o"), ("planned", "s")):
        pts = [r for r in hundred if r["where"].startswith(where) and r["strategy"] != "store-all"]
        for r in pts:
            overhead = r["measured_overhead"] if where == "measured" and r["measured_overhead"] else r["planned_overhead"]
            x, y = float(r["memory_ratio"]), 100 * float(overhead)
            ax.scatter([x], [y], marker=marker, color="tab:blue" if r["strategy"] == "sqrt" else "tab:green")
            ax.annotate(f'{r["strategy"]} ({r["setting"]}), {where}', (x, y), fontsize=7, xytext=(4, 2),
                        textcoords="offset points")
    ax.scatter([10], [33], marker="*", s=150, color="tab:red")
    ax.annotate("the claim: 10x, +33%", (10, 33), fontsize=8, xytext=(4, -10), textcoords="offset points")
    ax.set_xlabel("memory reduction against store-all (x)")
    ax.set_ylabel("time overhead (%)")
    ax.set_title("100 layers: memory reduction against overhead")
    save_figure(fig, out, "seed_claims.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
