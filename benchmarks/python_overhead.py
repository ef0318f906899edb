#!/usr/bin/python3
"""Contract: the Python path's overhead on a training step of the default model against the
CLI (issue 15.7). Prints figures, asserts nothing.

Per round, interleaved: `remat run --repeat R --json` (its step_seconds_median: ex.run on a
warm executor, the StepResult freed outside the timer) and R steps of remat.Executor.run in
this process, with gradients (zero-copy numpy views, what a user gets) and without, each
timed around the call with the StepResult freed outside the timer, as the CLI does. Prints
each round's medians and, over the rounds, the median ratio Python / CLI.

Threads are pinned (OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1, OMP_WAIT_POLICY=passive unless
set) for this process and the CLI alike.

Usage: /usr/bin/python3 benchmarks/python_overhead.py [--build build] [--rounds 7] [--repeat 3]
       [--model mlp:layers=100,width=512,batch=256,act=relu] [--strategy store-all]
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

PINNED = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_WAIT_POLICY": "passive"}
for key, value in PINNED.items():  # before remat (and OpenMP) load
    os.environ.setdefault(key, value)


def timed_steps(executor, report, repeat, gradients):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step = executor.run(report, gradients=gradients)
        times.append(time.perf_counter() - t0)
        del step  # the buffers go back to the backend outside the timer
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default="mlp:layers=100,width=512,batch=256,act=relu")
    parser.add_argument("--strategy", default="store-all")
    parser.add_argument("--budget", default=None)
    args = parser.parse_args()
    build = pathlib.Path(args.build).resolve()
    sys.path.insert(0, str(build / "python"))
    import remat

    model = remat.build_model(args.model)
    report = remat.plan(model, remat.make_strategy(args.strategy), budget=args.budget)
    executor = remat.Executor(model)
    executor.run(report)  # warm-up, as the CLI's
    cli_args = [str(build / "bin" / "remat"), "run", "--model", args.model, "--strategy", args.strategy,
                "--repeat", str(args.repeat), "--json"]
    if args.budget:
        cli_args += ["--budget", args.budget]
    env = {**os.environ}
    rows = []
    print(f"model {model.spec}, strategy {args.strategy}, threads "
          f"OMP={os.environ['OMP_NUM_THREADS']} OPENBLAS={os.environ['OPENBLAS_NUM_THREADS']}")
    print(f"{'round':>5} {'cli s':>8} {'python s':>9} {'no grads s':>10} {'python/cli':>10} {'no grads/cli':>12}")
    for k in range(args.rounds):
        out = subprocess.run(cli_args, capture_output=True, text=True, check=True, env=env)
        cli = json.loads(out.stdout.strip().splitlines()[-1])["step_seconds_median"]
        with_gradients = timed_steps(executor, report, args.repeat, True)
        without = timed_steps(executor, report, args.repeat, False)
        rows.append((cli, with_gradients, without))
        print(f"{k:>5} {cli:>8.3f} {with_gradients:>9.3f} {without:>10.3f} {with_gradients / cli:>10.3f} "
              f"{without / cli:>12.3f}")
    median = statistics.median
    ratio = median(r[1] / r[0] for r in rows)
    ratio_without = median(r[2] / r[0] for r in rows)
    print(f"medians: cli {median(r[0] for r in rows):.3f} s, python {median(r[1] for r in rows):.3f} s, "
          f"python without gradients {median(r[2] for r in rows):.3f} s")
    print(f"median of per-round ratios: python / cli {ratio:.3f} ({(ratio - 1) * 100:+.1f}%), "
          f"without gradients / cli {ratio_without:.3f} ({(ratio_without - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
