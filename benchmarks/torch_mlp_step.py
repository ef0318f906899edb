#!/usr/bin/python3
"""Contract: the PyTorch side of core_bench (d). Times one training step (forward +
backward, no optimizer) of the same MLP as remat's
"mlp:layers=L,width=W,batch=B,act=relu" f32 -- L x [nn.Linear(W, W), ReLU], MSE
loss against a target, inputs uniform in [-1, 1), weights N(0, 2/W), biases zero
(so no denormals; nothing is flushed) -- on torch.set_num_threads(T) threads
(OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set to T by the caller).

Standalone (default): --warmup steps, then --steps timed steps; prints one JSON
object on the last line of stdout.
--serve (how core_bench drives it, so that its steps and ours interleave in time
on a shared machine): after --warmup steps it prints "ready"; then each stdin line
"step" runs one timed step and answers its seconds on one line, and "report"
prints the JSON object and exits.

JSON fields:
  step_seconds_median, step_seconds_min, step_seconds_all   the timed steps
  peak_activation_bytes  peak live bytes allocated during one step, parameter
                         gradients excluded (see below)
  peak_including_parameter_gradients   the same peak with them
  saved_tensor_bytes     bytes autograd saved for backward (saved_tensors_hooks,
                         unique storages, parameters excluded): where the peak comes from

How the peak is measured, and why it compares with remat's budgeted peak: one
extra step runs under torch.profiler with profile_memory=True. The CPU allocator
reports every allocation and free made while profiling (address, size, and its
running total of the bytes allocated under the profiler and still live); replaying
them in time order gives the live bytes the step allocated at its worst moment.
Like remat's step, the measured step copies x and the target in (remat meters
them as `input`), and every forward value, saved value, gradient and temporary is
counted. Parameters exist before the step, so they are not counted; parameter
gradients are allocated during backward and remat does not budget them, so the
allocations that end up as a parameter's .grad (matched by address after the step)
are left out of the replay. Timed steps run without the profiler or the hooks.
"""
import argparse
import json
import os
import sys
import time


def build_mlp(torch, layers, width, batch):
    """The MLP both PyTorch comparisons run (this script on the CPU, gpu/torch_gpu_step.py
    on the GPU), on the CPU: L x [Linear(W, W), ReLU] with weights N(0, 2/W) and zero
    biases, drawn after torch.manual_seed(0), then x and the target uniform in [-1, 1)
    of shape (B, W). Returns (model, x, target, MSE loss)."""
    from torch import nn

    torch.manual_seed(0)
    modules = []
    for _ in range(layers):
        linear = nn.Linear(width, width)
        with torch.no_grad():
            linear.weight.normal_(0.0, (2.0 / width) ** 0.5)
            linear.bias.zero_()
        modules += [linear, nn.ReLU()]
    x_data = torch.rand(batch, width) * 2 - 1
    target_data = torch.rand(batch, width) * 2 - 1
    return nn.Sequential(*modules), x_data, target_data, nn.MSELoss()


def build(args, torch):
    torch.set_num_threads(args.threads)
    model, x_data, target_data, loss_fn = build_mlp(torch, args.layers, args.width, args.batch)

    def step():
        x = x_data.clone()  # remat copies the bound inputs into the step too
        target = target_data.clone()
        loss = loss_fn(model(x), target)
        loss.backward()
        return loss

    return model, step


def timed_step(model, step):
    model.zero_grad(set_to_none=True)  # fresh gradients each step, as remat's executor
    t0 = time.perf_counter()
    loss = step()
    return time.perf_counter() - t0, loss


def saved_tensor_bytes(torch, model, step):
    parameter_ptrs = {p.data_ptr() for p in model.parameters()}
    saved = {}

    def storage(t):
        return t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()

    def pack(t):
        s = storage(t)
        if s.data_ptr() not in parameter_ptrs:
            saved[s.data_ptr()] = s.nbytes()
        return t

    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(saved.values())


def measure_peak(torch, model, step):
    from torch.profiler import ProfilerActivity, profile

    model.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    grad_ptrs = {p.grad.data_ptr() for p in model.parameters() if p.grad is not None}
    results = prof.profiler.kineto_results
    # (time ns, +bytes allocated / -bytes freed, address, running total) under the profiler.
    records = []
    if hasattr(results, "experimental_event_tree"):
        stack = list(results.experimental_event_tree())
        while stack:
            event = stack.pop()
            stack.extend(event.children)
            fields = event.extra_fields
            if hasattr(fields, "alloc_size") and str(getattr(fields, "device", "cpu")).startswith("cpu"):
                records.append((event.start_time_ns, int(fields.alloc_size), int(fields.ptr),
                                int(fields.total_allocated)))
    if records:
        # Equal times keep the allocator's order (its running total before each record).
        records.sort(key=lambda r: (r[0], r[3] - r[1]))
        baseline = records[0][3] - records[0][1]
        with_grads = max(r[3] for r in records) - baseline
        last_alloc = {}
        for i, (_, size, ptr, _) in enumerate(records):
            if size > 0:
                last_alloc[ptr] = i
        parameter_gradients = {last_alloc[p] for p in grad_ptrs if p in last_alloc}
        live = peak = 0
        for i, (_, size, _, _) in enumerate(records):
            if i in parameter_gradients:
                continue  # becomes a parameter's .grad: not budgeted, like remat's parameter_gradient
            live += size
            peak = max(peak, live)
        return peak, with_grads, ("torch.profiler(profile_memory=True) CPU allocation replay, "
                                  "parameter-gradient allocations excluded")
    # Fallback for profilers without the event tree: the [memory] events, all
    # parameter-gradient bytes subtracted from the peak (an underestimate).
    events = sorted((e for e in results.events() if e.name() == "[memory]"), key=lambda e: e.start_us())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    return max(peak - grads, 0), peak, "torch.profiler [memory] events minus all parameter-gradient bytes"


def report(args, torch, model, step, times, loss):
    ordered = sorted(times)
    n = len(ordered)
    median = (ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])) if n else 0.0
    tiny = torch.finfo(torch.float32).tiny
    subnormal = sum(int(((p.grad != 0) & (p.grad.abs() < tiny)).sum()) for p in model.parameters()
                    if p.grad is not None)
    saved = saved_tensor_bytes(torch, model, step)
    peak, peak_with_grads, method = measure_peak(torch, model, step)
    return {
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "layers": args.layers, "width": args.width, "batch": args.batch,
        "warmup": args.warmup, "steps": n,
        "step_seconds_median": median,
        "step_seconds_min": ordered[0] if n else 0.0,
        "step_seconds_all": times,
        "loss": float(loss) if loss is not None else None,
        "peak_activation_bytes": peak,
        "peak_including_parameter_gradients": peak_with_grads,
        "peak_method": method,
        "saved_tensor_bytes": saved,
        "subnormal_gradient_values": subnormal,
        "denormals": "not flushed (torch.set_flush_denormal untouched); scaled init N(0, 2/width)",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=100)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--serve", action="store_true", help="take 'step' and 'report' commands on stdin")
    args = parser.parse_args()

    import torch

    model, step = build(args, torch)
    loss = None
    for _ in range(args.warmup):
        _, loss = timed_step(model, step)
    times = []
    if args.serve:
        print("ready", flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "step":
                seconds, loss = timed_step(model, step)
                times.append(seconds)
                print(f"{seconds:.9f}", flush=True)
            elif command == "report":
                break
            elif command:
                print(f"unknown command {command!r}", file=sys.stderr, flush=True)
                return 2
    else:
        for _ in range(args.steps):
            seconds, loss = timed_step(model, step)
            times.append(seconds)
    print(json.dumps(report(args, torch, model, step, times, loss)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
