#!/usr/bin/python3
"""Contract: the Python path's overhead on a run of the default model against the CLI (issue 15.7).
Interleaves, five times: Executor.run without and with gradient copies, and `remat run --repeat 1`
(its step_seconds_median); prints the medians' ratios. Usage: OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
OPENBLAS_NUM_THREADS=2 /usr/bin/python3 benchmarks/python_overhead.py [BUILD_DIR]"""
import json, subprocess, time, statistics, sys
BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
sys.path.insert(0, BUILD + "/python")
import remat
spec = "mlp:layers=100,width=512,batch=256,act=relu"
m = remat.build_model(spec)
r = remat.plan(m, remat.make_strategy("store-all"))
ex = remat.Executor(m)
ex.run(r, gradients=False)
py, pyg, cli = [], [], []
for k in range(5):
    t0 = time.perf_counter(); ex.run(r, gradients=False); py.append(time.perf_counter() - t0)
    t0 = time.perf_counter(); s = ex.run(r); pyg.append(time.perf_counter() - t0); del s
    out = subprocess.run([BUILD + "/bin/remat", "run", "--model", spec, "--strategy", "store-all", "--repeat", "1", "--json"],
                         capture_output=True, text=True, check=True)
    cli.append(json.loads(out.stdout)["step_seconds_median"])
med = statistics.median
print("python Executor.run(gradients=False) s:", [round(x, 3) for x in py])
print("python Executor.run() with gradient copies s:", [round(x, 3) for x in pyg])
print("cli step s:", [round(x, 3) for x in cli])
print("ratios of medians: no copies / cli %.3f, with copies / cli %.3f" % (med(py) / med(cli), med(pyg) / med(cli)))
