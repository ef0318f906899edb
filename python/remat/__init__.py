"""remat: reverse-mode autodiff with rematerialization strategies, from Python.

Contract: this package re-exports the extension module ``remat._remat`` (built from
python/remat_module.cpp, tape_bindings.cpp and chain_bindings.cpp) and adds nothing of
its own but ``non_solver_strategies()``. The C++ library does the work; errors are
``remat.Error`` (message ``"[source] ..."``) and ``remat.InfeasibleBudget`` (a
subclass, with ``min_feasible_bytes``). The ops live in ``remat.ops`` and are also
importable from ``remat`` itself (``remat.linear``, ``remat.relu``, ...); the four whose
names are Python builtins (sum, max, pow, slice) are left out of ``__all__`` so that
``from remat import *`` does not shadow the builtins (nor does ``remat.eval``, also left out).

A zoo model::

    import remat
    model = remat.build_model("mlp:layers=8,width=16,batch=4")
    report = remat.plan(model, remat.make_strategy("revolve"), budget="60%")
    step = remat.run(model, report)
    assert step.peak_bytes == report.peak_bytes

A tape recorded op by op::

    import numpy as np, remat
    from remat import ops
    tape = remat.Tape("two-layer")
    x = tape.placeholder("x", np.ones((4, 8), np.float32))
    w = tape.parameter("w", np.full((8, 8), 0.1, np.float32))
    h = ops.relu(x @ w)
    tape.set_loss(ops.mean(h * h))
    step = remat.run(tape, remat.plan(tape, remat.make_strategy("store-all")))
    step.gradients["w"]   # a numpy array over remat's own buffer (no copy)
"""

import sys as _sys

from . import _remat
from ._remat import (  # noqa: F401
    Buffer,
    Chain,
    ChainPlan,
    Error,
    Executor,
    InfeasibleBudget,
    Model,
    PlanReport,
    Program,
    Strategy,
    StepResult,
    Tape,
    Value,
    build_model,
    eval,
    explain,
    is_solver,
    load_chain,
    make_strategy,
    model_catalogue,
    ops,
    parse_budget,
    parse_chain,
    plan,
    plan_chain,
    run,
    strategy_names,
)

# `import remat.ops` and `from remat.ops import relu` find the extension's submodule.
_sys.modules[__name__ + ".ops"] = ops

_BUILTIN_NAMES = {"sum", "max", "pow", "slice"}
OP_NAMES = sorted(name for name in dir(ops) if not name.startswith("_"))
globals().update({name: getattr(ops, name) for name in OP_NAMES})

__all__ = [
    "Buffer",
    "Chain",
    "ChainPlan",
    "Error",
    "Executor",
    "InfeasibleBudget",
    "Model",
    "PlanReport",
    "Program",
    "Strategy",
    "StepResult",
    "Tape",
    "Value",
    "build_model",
    "explain",
    "is_solver",
    "load_chain",
    "make_strategy",
    "model_catalogue",
    "non_solver_strategies",
    "ops",
    "parse_budget",
    "parse_chain",
    "plan",
    "plan_chain",
    "run",
    "strategy_names",
] + [name for name in OP_NAMES if name not in _BUILTIN_NAMES]


def non_solver_strategies():
    """Every strategy but the time-limited solvers (checkmate): the ones cheap to sweep."""
    return strategy_names(include_solvers=False)
