"""Contract: pytest suite of zero-copy results and chain files.
Zero copy: gradients are numpy views whose base is the remat.Buffer owning the backend's
buffer (np.shares_memory with the buffer, owndata False), they keep their values after
the StepResult, the Executor and its backend are deleted, two steps' gradients held
together are distinct buffers, parameter views are read-only and follow the executor's
parameter, and arrays dropped in one thread while another runs steps leave every step's
figures and gradients intact. Chain files: load_chain + plan_chain give the numbers of
`remat plan --chain file:PATH --json` for every chain strategy at several budgets, and
bad files, node-level strategies and infeasible budgets raise remat.Error."""

import gc
import json
import subprocess
import threading

import numpy as np
import pytest

import remat
from conftest import MLP_SPEC


def test_gradients_are_views_of_remat_buffers(mlp):
    report = remat.plan(mlp, remat.make_strategy("revolve"), budget="60%")
    ex = remat.Executor(mlp)
    step = ex.run(report)
    copies = {name: g.copy() for name, g in step.gradients.items()}
    views = dict(step.gradients)
    for name, g in views.items():
        assert isinstance(g.base, remat.Buffer), name
        assert not g.flags.owndata
        assert np.shares_memory(g, np.asarray(g.base))
        assert g.base.nbytes == g.nbytes
        assert memoryview(g.base).nbytes == g.nbytes
    second = ex.run(report)  # the first step's buffers are still held: fresh ones
    for name, g in second.gradients.items():
        assert not np.shares_memory(g, views[name])
        assert np.array_equal(g, copies[name])
    del step, second, ex
    gc.collect()
    for name, g in views.items():  # the executor and its backend are gone; the bytes are not
        assert g.tobytes() == copies[name].tobytes(), name
    fresh = remat.run(mlp, report)  # remat.run's backend ends with the call
    for name, g in fresh.gradients.items():
        assert isinstance(g.base, remat.Buffer)
        assert g.tobytes() == copies[name].tobytes()


def test_parameter_views_are_read_only_and_outlive_the_executor(mlp):
    ex = remat.Executor(mlp)
    name = mlp.parameters[0]
    first, again = ex.parameter(name), ex.parameter(name)
    assert isinstance(first.base, remat.Buffer)
    assert np.shares_memory(first, again)
    assert not first.flags.writeable
    with pytest.raises(ValueError):
        first[...] = 0
    assert np.array_equal(first, mlp.initial_parameters()[name])
    del ex
    gc.collect()
    assert np.array_equal(first, mlp.initial_parameters()[name])
    with pytest.raises(remat.Error, match=r"^\[python\] Executor.parameter: no parameter named 'nope'"):
        remat.Executor(mlp).parameter("nope")


def test_arrays_dropped_while_another_thread_runs(mlp):
    report = remat.plan(mlp, remat.make_strategy("greedy"), budget="60%")
    reference = remat.run(mlp, report)
    ex = remat.Executor(mlp)
    held, failures = [], []

    def steps():
        try:
            for _ in range(20):
                s = ex.run(report)
                if s.peak_bytes != report.peak_bytes:
                    failures.append("peak")
                for name, g in reference.gradients.items():
                    if not np.array_equal(s.gradients[name], g):
                        failures.append(name)
                held.append(s.gradients)
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(repr(e))

    runner = threading.Thread(target=steps)
    runner.start()
    while runner.is_alive():
        while held:
            held.pop()  # returns the buffers to the backend while steps run
    runner.join()
    assert not failures


CHAIN = {
    "name": "hetero6",
    "fw": [3, 1, 4, 1, 5, 9],
    "bw": [6, 2, 8, 2, 10, 18, 0],
    "cw": [5, 3, 7, 2, 6, 4, 1],
    "cbw": [9, 6, 12, 5, 10, 8, 2],
    "ftmp": [1, 0, 2, 0, 1, 3],
    "btmp": [2, 1, 3, 0, 2, 4, 0],
}
CHAIN_STRATEGIES = ["store-all", "sqrt", "chen-greedy", "revolve", "optimal"]


@pytest.fixture(scope="module")
def chain_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("chains") / "hetero6.json"
    path.write_text(json.dumps(CHAIN))
    return path


@pytest.mark.parametrize("budget", [None, "70%", 40])
@pytest.mark.parametrize("name", CHAIN_STRATEGIES)
def test_chain_plans_equal_the_cli(chain_file, build_dir, name, budget):
    if name not in remat.strategy_names():
        pytest.skip(f"{name} is not a strategy of this build")
    binary = build_dir / "bin" / "remat"
    if not binary.exists():
        pytest.skip(f"{binary} is not built")
    chain = remat.load_chain(str(chain_file))
    args = [str(binary), "plan", "--chain", f"file:{chain_file}", "--strategy", name, "--json"]
    if budget is not None:
        args += ["--budget", str(budget)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    try:
        plan = remat.plan_chain(chain, remat.make_strategy(name), budget=budget)
    except remat.InfeasibleBudget as refusal:
        assert out.returncode != 0
        assert str(refusal).splitlines()[0] in out.stderr
        return
    assert out.returncode == 0, out.stderr
    cli = json.loads(out.stdout.strip().splitlines()[-1])
    assert cli["chain"] == plan.chain == chain.name == "hetero6"
    assert cli["budget"] == plan.budget
    assert cli["stages"] == plan.stages == len(chain) == 6
    for key in ["setting", "forward_steps", "recomputed_steps", "makespan", "peak", "store_all_peak"]:
        assert cli[key] == getattr(plan, key), key
    assert len(plan.schedule) == len(plan.memory_after)
    assert max(plan.memory_after) <= plan.peak
    if plan.budget is not None:
        assert plan.peak <= plan.budget


def test_chain_objects(chain_file):
    chain = remat.load_chain(str(chain_file))
    assert chain.fw == CHAIN["fw"] and chain.cbw == CHAIN["cbw"]
    again = remat.Chain.from_dict(chain.to_dict())
    assert again.to_dict() == chain.to_dict()
    uniform = remat.parse_chain("uniform:n=10")
    plan = remat.plan_chain(uniform, remat.make_strategy("revolve"), budget="50%")
    assert plan.peak <= plan.budget == uniform.store_all_peak * 50 // 100
    assert plan.schedule[-1].startswith("B")


def test_chain_errors(tmp_path, chain_file):
    with pytest.raises(remat.Error, match=r"^\[chain"):
        remat.load_chain(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**CHAIN, "fw": [1, 2]}))
    with pytest.raises(remat.Error, match=r"^\[chain"):
        remat.load_chain(str(bad))
    bad.write_text("{not json")
    with pytest.raises(remat.Error, match=r"^\[chain"):
        remat.load_chain(str(bad))
    with pytest.raises(remat.Error, match=r"^\[chain"):
        remat.Chain.from_dict({**CHAIN, "cw": [-1] * 7})
    with pytest.raises(remat.Error, match=r"^\[chain"):
        remat.parse_chain("uniform:n=0")
    chain = remat.load_chain(str(chain_file))
    with pytest.raises(remat.Error, match=r"^\[greedy\] works on node-level graphs"):
        remat.plan_chain(chain, remat.make_strategy("greedy"))
    with pytest.raises(remat.InfeasibleBudget) as info:
        remat.plan_chain(chain, remat.make_strategy("revolve"), budget=1)
    smallest = info.value.min_feasible_bytes
    assert remat.plan_chain(chain, remat.make_strategy("revolve"), budget=smallest).peak <= smallest
    with pytest.raises(TypeError):
        remat.plan_chain(chain, remat.make_strategy("revolve"), budget=1.5)
