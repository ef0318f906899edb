"""remat: reverse-mode autodiff with rematerialization strategies, from Python.

Contract: this package re-exports the extension module ``remat._remat`` (built from
python/remat_module.cpp) and adds nothing of its own but ``non_solver_strategies()``.
The C++ library does the work; errors are ``remat.Error`` (message ``"[source] ..."``)
and ``remat.InfeasibleBudget`` (a subclass, with ``min_feasible_bytes``).

Typical use::

    import remat
    model = remat.build_model("mlp:layers=8,width=16,batch=4")
    report = remat.plan(model, remat.make_strategy("revolve"), budget="60%")
    step = remat.run(model, report)
    assert step.peak_bytes == report.peak_bytes
"""

from ._remat import (  # noqa: F401
    Error,
    Executor,
    InfeasibleBudget,
    Model,
    PlanReport,
    Program,
    Strategy,
    StepResult,
    build_model,
    explain,
    is_solver,
    make_strategy,
    model_catalogue,
    parse_budget,
    plan,
    run,
    strategy_names,
)

__all__ = [
    "Error",
    "Executor",
    "InfeasibleBudget",
    "Model",
    "PlanReport",
    "Program",
    "Strategy",
    "StepResult",
    "build_model",
    "explain",
    "is_solver",
    "make_strategy",
    "model_catalogue",
    "non_solver_strategies",
    "parse_budget",
    "plan",
    "run",
    "strategy_names",
]


def non_solver_strategies():
    """Every strategy but the time-limited solvers (checkmate): the ones cheap to sweep."""
    return strategy_names(include_solvers=False)
