#!/usr/bin/env python3
"""Contract: the PyTorch side of gpu/check.sh: one training step (forward + backward,
no optimizer) of the MLP that gpu_bench runs as "mlp:layers=L,width=W,batch=B" --
L x [nn.Linear(W, W), ReLU], MSE loss against a target, f32 on the GPU, weights
N(0, 2/W), biases zero, inputs uniform in [-1, 1) -- in two modes:
  store-all              autograd keeps every saved tensor;
  checkpoint_sequential  torch.utils.checkpoint.checkpoint_sequential with S
                         segments (default round(sqrt(L)), like remat's sqrt).
TF32 is off (torch.backends.cuda.matmul.allow_tf32 = False), as in remat's cuBLAS
handle. Step time: median of --steps steps after --warmup, with
torch.cuda.synchronize() around each. Memory: torch.cuda.max_memory_allocated()
during one step minus the bytes allocated before it (parameters), after
reset_peak_memory_stats(); gradients are set to None first, so parameter gradients
are counted, as in gpu_bench's "device peak". x and the target are cloned inside
the step, as remat copies its bound inputs into the step.
Prints one JSON object on the last line of stdout; --json FILE also writes it.
"""
import argparse
import json
import math
import statistics
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks"))
from torch_mlp_step import build_mlp  # noqa: E402  (the same MLP as the CPU comparison)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=100)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--segments", type=int, default=0, help="0: round(sqrt(layers))")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", default="")
    args = parser.parse_args()

    import torch
    from torch.utils.checkpoint import checkpoint_sequential

    if not torch.cuda.is_available():
        print(json.dumps({"error": "torch.cuda.is_available() is False"}))
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device("cuda")
    model, x_data, target_data, loss_fn = build_mlp(torch, args.layers, args.width, args.batch)
    model = model.to(device)
    x_data = x_data.to(device)
    target_data = target_data.to(device)
    segments = args.segments or max(1, round(math.sqrt(args.layers)))

    def forward_store_all(x):
        return model(x)

    def forward_checkpointed(x):
        try:
            return checkpoint_sequential(model, segments, x, use_reentrant=False)
        except TypeError:  # older torch: no use_reentrant argument
            return checkpoint_sequential(model, segments, x)

    def step(forward):
        x = x_data.clone()
        target = target_data.clone()
        loss = loss_fn(forward(x), target)
        loss.backward()
        return loss

    result = {"torch_version": torch.__version__, "device": torch.cuda.get_device_name(0),
              "layers": args.layers, "width": args.width, "batch": args.batch, "segments": segments, "modes": {}}
    for name, forward in (("store-all", forward_store_all), ("checkpoint_sequential", forward_checkpointed)):
        for _ in range(args.warmup):
            model.zero_grad(set_to_none=True)
            step(forward)
        times = []
        for _ in range(args.steps):
            model.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            loss = step(forward)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        model.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        loss = step(forward)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
        result["modes"][name] = {"step_ms_median": statistics.median(times) * 1e3, "step_ms_min": min(times) * 1e3,
                                 "device_step_peak_bytes": peak, "loss": float(loss)}
    text = json.dumps(result)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
