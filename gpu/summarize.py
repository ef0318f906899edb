#!/usr/bin/env python3
"""Contract: the short table gpu/check.sh prints last. Reads gpu_bench's JSON (--bench),
PyTorch's (--torch, optional) and the outcome of the test and CLI steps (--tests,
--cli: free text such as "PASS" or "FAIL (rc 1)"); prints device, test outcome,
gemm and elementwise against their references, and one row per strategy for each
model: step time, device memory of the step (tensor bytes allocated beyond the
parameters, parameter gradients included), budgeted peak measured and planned,
recomputed ops, gradients against store-all; the MLP rows also carry time and
memory ratios against PyTorch (store-all against store-all, sqrt against
checkpoint_sequential). Missing inputs print as "n/a"; it never fails the run.
"""
import argparse
import json

MiB = 1024.0 * 1024.0


def load(path):
    if not path:
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", default="")
    parser.add_argument("--torch", default="")
    parser.add_argument("--tests", default="n/a")
    parser.add_argument("--cli", default="n/a")
    parser.add_argument("--seconds", default="")
    args = parser.parse_args()
    bench, torch = load(args.bench), load(args.torch)

    line = "=" * 118
    print(line)
    print("remat on the GPU: summary (gpu/check.sh)" + (f", {args.seconds} s in all" if args.seconds else ""))
    print(line)
    print(f"{'device':<22} {bench['device'] if bench else 'n/a'}")
    print(f"{'GPU tests':<22} {args.tests}")
    print(f"{'remat --device cuda':<22} {args.cli}")
    if torch and "torch_version" in torch:
        print(f"{'PyTorch':<22} {torch['torch_version']} on {torch.get('device', '?')}")
    if bench and bench.get("gemm"):
        g = max(bench["gemm"], key=lambda r: r["m"] * r["n"] * r["k"])
        print(f"{'gemm f32 (largest)':<22} {g['m']}x{g['n']}x{g['k']}: remat {g['remat_tflops']:.1f} TFLOP/s, "
              f"cuBLAS direct {g['cublas_tflops']:.1f} TFLOP/s, ratio {g['remat_tflops'] / g['cublas_tflops']:.3f}")
    if bench and bench.get("elementwise"):
        rows = {r["kernel"]: r for r in bench["elementwise"]}
        copy = rows.get("cudaMemcpy D2D")
        parts = [f"{k} {rows[k]['gbs']:.0f} GB/s ({rows[k]['vs_copy']:.2f}x)" for k in ("binary add", "unary relu", "axpy")
                 if k in rows]
        print(f"{'elementwise':<22} " + ", ".join(parts) + (f"; D2D copy {copy['gbs']:.0f} GB/s" if copy else ""))

    torch_modes = (torch or {}).get("modes", {})
    for model in (bench or {}).get("models", []):
        is_mlp = model["model"].startswith("mlp:")
        print()
        print(f"{model['model']}")
        header = (f"  {'strategy':<32} {'step ms':>9} {'device MiB':>11} {'budgeted MiB':>13} {'planned MiB':>12} "
                  f"{'recomputed':>10} {'grads':>7} {'promises':>9}")
        if is_mlp:
            header += f" {'time/torch':>11} {'mem/torch':>10}"
        print(header)
        for r in model["rows"]:
            row = (f"  {'remat ' + r['strategy']:<32} {r['step_ms_median']:>9.2f} {r['device_step_peak_bytes'] / MiB:>11.1f} "
                   f"{r['peak_bytes_measured'] / MiB:>13.1f} {r['peak_bytes_predicted'] / MiB:>12.1f} "
                   f"{r['recomputed_ops']:>10} {'equal' if r['grads_bitwise_equal'] else 'DIFFER':>7} "
                   f"{'hold' if r['promises_hold'] else 'BROKEN':>9}")
            if is_mlp:
                ref = {"store-all": "store-all", "sqrt": "checkpoint_sequential"}.get(r["strategy"])
                t = torch_modes.get(ref) if ref else None
                if t:
                    row += (f" {r['step_ms_median'] / t['step_ms_median']:>11.2f}"
                            f" {r['device_step_peak_bytes'] / max(t['device_step_peak_bytes'], 1):>10.2f}")
                else:
                    row += f" {'-':>11} {'-':>10}"
            print(row)
        if is_mlp:
            for name, t in torch_modes.items():
                label = "torch " + (name if name == "store-all" else f"{name}({torch.get('segments', '?')})")
                print(f"  {label:<32} {t['step_ms_median']:>9.2f} {t['device_step_peak_bytes'] / MiB:>11.1f} "
                      f"{'-':>13} {'-':>12} {'-':>10} {'-':>7} {'-':>9}")
            if not torch_modes:
                print("  torch: n/a (PyTorch run failed or was skipped)")
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
