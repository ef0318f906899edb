"""Contract: pytest suite of the Python module (tests/python; runs in well under 60 s).
Checks the promises the C++ suite checks, seen from Python: for every non-solver
strategy, at no budget and at 60% of store-all's peak, the measured peak equals the
predicted one, fits the budget, and gradients are bitwise store-all's; infeasible
budgets raise InfeasibleBudget with a smallest feasible budget that is itself
accepted; errors keep the C++ messages; `remat run --json` reports the same peak and
recomputation as Python; bad inputs raise exceptions and never crash.
Run: PYTHONPATH=build/python /usr/bin/python3 -m pytest tests/python -q"""

import json
import subprocess
import sys

import numpy as np
import pytest

import remat
from conftest import MLP_SPEC

STRATEGIES = remat.strategy_names(include_solvers=False)
BUDGETS = [None, "60%"]


@pytest.fixture(scope="module")
def store_all_step(mlp):
    return remat.run(mlp, remat.plan(mlp, remat.make_strategy("store-all")))


def test_import_and_names():
    names = remat.strategy_names()
    assert "revolve" in names and "greedy" in names
    assert set(STRATEGIES) <= set(names)
    assert issubclass(remat.InfeasibleBudget, remat.Error)
    assert issubclass(remat.Error, Exception)


def test_model_attributes(mlp):
    assert mlp.spec.startswith("mlp:")
    assert isinstance(mlp.loss, int) and mlp.loss >= 0
    batch = mlp.batch(0)
    assert isinstance(batch, dict) and batch
    for value in batch.values():
        assert isinstance(value, np.ndarray)
    again = mlp.batch(0)
    for name in batch:
        assert np.array_equal(batch[name], again[name])


@pytest.mark.parametrize("budget", BUDGETS, ids=["none", "60pct"])
@pytest.mark.parametrize("name", STRATEGIES)
def test_plan_and_run(mlp, store_all_step, name, budget):
    strategy = remat.make_strategy(name)
    try:
        report = remat.plan(mlp, strategy, budget=budget)
    except remat.InfeasibleBudget as e:
        # Allowed for a budget below the strategy's family; the smallest is then accepted.
        assert budget is not None and e.min_feasible_bytes > 0
        report = remat.plan(mlp, strategy, budget=e.min_feasible_bytes)
        budget = e.min_feasible_bytes
    assert report.strategy == name
    assert isinstance(report.setting, str)
    assert report.store_all_peak > 0 and report.store_all_time > 0
    assert isinstance(report.notes, list)
    doc = report.program_json()
    assert isinstance(doc, dict)

    step = remat.run(mlp, report)
    assert step.peak_bytes == report.peak_bytes
    assert step.predicted_peak_bytes == report.peak_bytes
    assert step.recomputed_ops == report.recomputed_ops
    if budget is not None:
        assert report.budget_bytes is not None
        assert step.peak_bytes <= report.budget_bytes
    assert step.loss == store_all_step.loss
    assert set(step.gradients) == set(store_all_step.gradients)
    for param, grad in store_all_step.gradients.items():
        assert np.array_equal(step.gradients[param], grad), param


def test_sixty_percent_is_of_store_all(mlp):
    report = remat.plan(mlp, remat.make_strategy("revolve"), budget="60%")
    assert report.budget_bytes == report.store_all_peak * 60 // 100
    assert report.peak_bytes <= report.budget_bytes


def test_program_roundtrip(mlp):
    report = remat.plan(mlp, remat.make_strategy("sqrt"))
    program = remat.Program.from_json(report.program_json())
    a = remat.run(mlp, report)
    b = remat.run(mlp, program)
    assert a.peak_bytes == b.peak_bytes == b.predicted_peak_bytes
    for name in a.gradients:
        assert np.array_equal(a.gradients[name], b.gradients[name])
    assert "compute" in report.program.to_string()


def test_infeasible_budget(mlp):
    strategy = remat.make_strategy("revolve")
    with pytest.raises(remat.InfeasibleBudget) as info:
        remat.plan(mlp, strategy, budget=1)
    smallest = info.value.min_feasible_bytes
    assert smallest > 1
    assert isinstance(info.value, remat.Error)
    assert str(info.value)
    report = remat.plan(mlp, strategy, budget=smallest)
    assert report.peak_bytes <= smallest
    step = remat.run(mlp, report)
    assert step.peak_bytes == report.peak_bytes


def test_errors_keep_messages(mlp):
    with pytest.raises(remat.Error, match=r"\[strategy\]"):
        remat.make_strategy("no-such-strategy")
    with pytest.raises(remat.Error, match=r"\[model"):
        remat.build_model("bogus:layers=1")
    with pytest.raises(remat.Error, match=r"\[model"):
        remat.build_model("mlp:layers=abc")
    with pytest.raises(remat.Error, match=r"\[strategy\]"):
        remat.make_strategy("store-all", slots=3)
    with pytest.raises(remat.Error, match=r"\[greedy\]"):
        remat.make_strategy("greedy", heuristic="nope")


def test_explain(mlp):
    doc = remat.explain(mlp, remat.make_strategy("revolve"), budget="60%")
    assert isinstance(doc, dict)
    assert doc["strategy"] == "revolve"
    assert "program" in doc and "summary" in doc
    assert doc["model"] == mlp.spec


def test_same_numbers_as_cli(mlp, build_dir):
    binary = build_dir / "bin" / "remat"
    if not binary.exists():
        pytest.skip(f"{binary} is not built")
    out = subprocess.run(
        [str(binary), "run", "--model", MLP_SPEC, "--strategy", "revolve", "--budget", "60%", "--repeat", "1", "--json"],
        capture_output=True, text=True, timeout=60, check=True)
    cli = json.loads(out.stdout.strip().splitlines()[-1])
    report = remat.plan(mlp, remat.make_strategy("revolve"), budget="60%")
    step = remat.run(mlp, report)
    assert cli["model"] == mlp.spec
    assert cli["budget_bytes"] == report.budget_bytes
    assert cli["setting"] == report.setting
    assert cli["peak_bytes_predicted"] == report.peak_bytes
    assert cli["peak_bytes_measured"] == step.peak_bytes
    assert cli["recomputed_ops"] == report.recomputed_ops
    assert cli["recomputed_ops_measured"] == step.recomputed_ops
    assert cli["planned_time_ns"] == report.planned_time
    assert cli["store_all_peak_bytes"] == report.store_all_peak


@pytest.mark.parametrize("budget", [-1, 0, "-5%", "0.5", "lots", 2**70, "1e30%"])
def test_bad_budgets_raise(mlp, budget):
    with pytest.raises((remat.Error, OverflowError, ValueError, TypeError)):
        remat.plan(mlp, remat.make_strategy("revolve"), budget=budget)


@pytest.mark.parametrize("budget", [1.5, [1], b"60%", True])
def test_budget_wrong_type(mlp, budget):
    with pytest.raises(TypeError):
        remat.plan(mlp, remat.make_strategy("revolve"), budget=budget)


def test_wrong_types_raise(mlp):
    with pytest.raises(TypeError):
        remat.build_model(42)
    with pytest.raises(TypeError):
        remat.plan("mlp", remat.make_strategy("revolve"))
    with pytest.raises(TypeError):
        remat.plan(mlp, "revolve")
    with pytest.raises(TypeError):
        remat.run(mlp, "not a plan")
    with pytest.raises(TypeError):
        remat.make_strategy("revolve", slots="three")
    with pytest.raises((ValueError, TypeError, OverflowError)):
        remat.run(mlp, remat.plan(mlp, remat.make_strategy("store-all")), batch=-1)
    with pytest.raises(remat.Error):
        remat.make_strategy("revolve", time_limit=-1.0)


def test_huge_spec_raises():
    with pytest.raises(remat.Error, match=r"\[model"):
        remat.build_model("mlp:layers=100000000,width=100000,batch=4")
    with pytest.raises(remat.Error):
        remat.build_model("mlp:layers=99999999999999999999999")


def test_plan_for_another_model_is_refused(mlp):
    other = remat.build_model("mlp:layers=3,width=4,batch=2")
    report = remat.plan(other, remat.make_strategy("store-all"))
    with pytest.raises(remat.Error):
        remat.run(mlp, report)


def test_bad_program_json_raises(mlp):
    doc = remat.plan(mlp, remat.make_strategy("store-all")).program_json()
    doc["loss"] = 10**6
    with pytest.raises(remat.Error):
        remat.run(mlp, remat.Program.from_json(doc))
    with pytest.raises(remat.Error):
        remat.Program.from_json({"nonsense": True})


def test_no_crash_in_subprocess(build_dir):
    # An interpreter that imports remat, raises through it and exits cleanly.
    code = ("import remat\n"
            "try:\n  remat.build_model('nope')\nexcept remat.Error as e:\n  print('ok', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(build_dir / "python")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok [model")


def test_threads_share_a_model(mlp, store_all_step):
    # plan and run release the GIL: steps in several threads give the same numbers.
    from concurrent.futures import ThreadPoolExecutor

    def one(name):
        report = remat.plan(mlp, remat.make_strategy(name), budget="60%" if name != "store-all" else None)
        return remat.run(mlp, report)

    with ThreadPoolExecutor(max_workers=4) as pool:
        steps = list(pool.map(one, ["revolve", "greedy", "sqrt", "store-all"]))
    for step in steps:
        assert step.peak_bytes == step.predicted_peak_bytes
        for name, grad in store_all_step.gradients.items():
            assert np.array_equal(step.gradients[name], grad)


def test_docstrings():
    for name in remat.__all__:
        assert getattr(remat, name).__doc__, name


def test_executor_reuses_its_backend(mlp):
    """remat.Executor runs many steps on one backend: the same numbers as run(), step after step."""
    report = remat.plan(mlp, remat.make_strategy("revolve"), budget="60%")
    once = remat.run(mlp, report)
    ex = remat.Executor(mlp)
    for _ in range(3):
        step = ex.run(report)
        assert step.peak_bytes == once.peak_bytes == report.peak_bytes
        assert step.recomputed_ops == once.recomputed_ops
        for name, g in once.gradients.items():
            assert np.array_equal(step.gradients[name], g)
    with pytest.raises(ValueError):
        ex.run(report, batch=-1)
