"""Contract: pytest suite of recording a Tape from Python (remat.Tape, remat.Value,
remat.ops). Oracles: the zoo's own MLP (a hand-recorded copy gives bitwise the same
gradients, peaks and recomputations under every non-solver strategy, and the CLI plans
the zoo model to the same figures), numpy closed forms (a two-layer tanh MLP's
backpropagation written out), central finite differences in float64 over the other op
families, and numpy arithmetic for the operators with Python scalars. Misuse (values of
two tapes, bad shapes, wrong dtypes, recording after set_loss, a dropped tape) raises
remat.Error with the C++ message, never crashes."""

import json
import subprocess

import numpy as np
import pytest

import remat
from remat import ops

STRATEGIES = remat.strategy_names(include_solvers=False)
ZOO_SPEC = "mlp:act=relu,batch=4,dtype=f32,layers=4,width=8"


def record_zoo_mlp(zoo):
    """The zoo's mlp (models/models.cpp) recorded by hand, with the zoo's initial weights."""
    params = zoo.initial_parameters()
    batch = zoo.batch(0)
    tape = remat.Tape("mlp-by-hand")
    h = tape.placeholder("x", shape=batch["x"].shape, dtype=batch["x"].dtype)
    target = tape.placeholder("target", shape=batch["target"].shape, dtype=np.float32)
    layers = len(params) // 2
    for layer in range(layers):
        w = tape.parameter(f"w{layer}", params[f"w{layer}"])
        b = tape.parameter(f"b{layer}", params[f"b{layer}"])
        h = ops.relu(ops.linear(h, w, b))
        tape.mark_stage(h)
    tape.set_loss(ops.mse(h, target))
    return tape, batch


@pytest.fixture(scope="module")
def zoo():
    return remat.build_model(ZOO_SPEC)


@pytest.mark.parametrize("budget", [None, "60%"], ids=["none", "60pct"])
@pytest.mark.parametrize("name", STRATEGIES)
def test_hand_recorded_mlp_equals_the_zoo(zoo, name, budget):
    tape, batch = record_zoo_mlp(zoo)
    assert len(tape) == zoo.num_nodes
    assert tape.parameters == zoo.parameters
    strategy = remat.make_strategy(name)
    try:
        zoo_plan = remat.plan(zoo, strategy, budget=budget)
    except remat.InfeasibleBudget as refusal:
        with pytest.raises(remat.InfeasibleBudget) as ours:
            remat.plan(tape, strategy, budget=budget)
        assert ours.value.min_feasible_bytes == refusal.min_feasible_bytes
        return
    tape_plan = remat.plan(tape, strategy, budget=budget)
    assert tape_plan.setting == zoo_plan.setting
    assert tape_plan.peak_bytes == zoo_plan.peak_bytes
    assert tape_plan.recomputed_ops == zoo_plan.recomputed_ops
    zoo_step = remat.run(zoo, zoo_plan)
    tape_step = remat.run(tape, tape_plan, inputs=batch)
    assert tape_step.peak_bytes == tape_step.predicted_peak_bytes == zoo_step.peak_bytes
    assert tape_step.recomputed_ops == zoo_step.recomputed_ops
    assert tape_step.loss == zoo_step.loss
    for param, grad in zoo_step.gradients.items():
        assert tape_step.gradients[param].tobytes() == grad.tobytes(), param


def test_hand_recorded_mlp_plans_as_the_cli(zoo, build_dir):
    binary = build_dir / "bin" / "remat"
    if not binary.exists():
        pytest.skip(f"{binary} is not built")
    tape, _ = record_zoo_mlp(zoo)
    for name in ["revolve", "optimal", "greedy"]:
        out = subprocess.run([str(binary), "plan", "--model", ZOO_SPEC, "--strategy", name, "--budget", "60%", "--json"],
                             capture_output=True, text=True, timeout=60, check=True)
        cli = json.loads(out.stdout.strip().splitlines()[-1])
        report = remat.plan(tape, remat.make_strategy(name), budget="60%")
        assert cli["model"] == zoo.spec
        assert cli["budget_bytes"] == report.budget_bytes
        assert cli["setting"] == report.setting
        assert cli["peak_bytes"] == report.peak_bytes
        assert cli["recomputed_ops"] == report.recomputed_ops
        assert cli["planned_time_ns"] == report.planned_time


def store_all_gradients(tape, inputs=None):
    step = remat.run(tape, remat.plan(tape, remat.make_strategy("store-all")), inputs=inputs)
    return step.loss, step.gradients


def test_two_layer_mlp_matches_numpy_backpropagation():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 4))
    y = rng.standard_normal((5, 3))
    w1, b1 = rng.standard_normal((6, 4)), rng.standard_normal(6)
    w2, b2 = rng.standard_normal((3, 6)), rng.standard_normal(3)
    tape = remat.Tape()
    xv, yv = tape.placeholder("x", x), tape.placeholder("y", y)
    W1, B1 = tape.parameter("w1", w1), tape.parameter("b1", b1)
    W2, B2 = tape.parameter("w2", w2), tape.parameter("b2", b2)
    h = ops.tanh(ops.linear(xv, W1, B1))
    out = h @ ops.transpose(W2) + B2
    tape.set_loss(ops.mse(out, yv))
    loss, grads = store_all_gradients(tape)
    # numpy: forward, then the adjoints written out by hand.
    a = np.tanh(x @ w1.T + b1)
    o = a @ w2.T + b2
    assert loss == pytest.approx(np.mean((o - y) ** 2), rel=1e-12)
    do = 2 * (o - y) / o.size
    dw2, db2 = do.T @ a, do.sum(0)
    da = do @ w2
    dz = da * (1 - a * a)
    dw1, db1 = dz.T @ x, dz.sum(0)
    for name, expected in [("w1", dw1), ("b1", db1), ("w2", dw2), ("b2", db2)]:
        np.testing.assert_allclose(grads[name], expected, rtol=1e-11, atol=1e-13, err_msg=name)


def composite_loss(tape, p):
    """A float64 network over the op families the MLP does not reach."""
    img = tape.placeholder("img", p["img_data"])
    labels = tape.placeholder("labels", p["labels_data"])
    conv = ops.conv2d(img, tape.parameter("k", p["k"]), tape.parameter("kb", p["kb"]), stride=1, padding=1)
    bn = ops.batchnorm(conv, tape.parameter("g", p["g"]), tape.parameter("beta", p["beta"]))
    pooled = ops.max_pool2d(ops.gelu(bn), 2)                      # (2, 3, 2, 2)
    flat = ops.reshape(pooled, [2, 12])
    left, right = ops.slice(flat, 1, 0, 6), ops.slice(flat, 1, 6, 12)
    joined = ops.concat([right, ops.sigmoid(left)], 1)          # (2, 12)
    normed = ops.layernorm(joined, tape.parameter("lg", p["lg"]), tape.parameter("lb", p["lb"]))
    logits = ops.linear(normed, tape.parameter("wo", p["wo"]))  # (2, 4)
    soft = ops.softmax(logits)
    extra = ops.mean(ops.sum(ops.square(soft), axes=1)) + ops.mean(ops.exp(ops.scale(logits, 0.1)))
    avg = ops.mean(ops.avg_pool2d(ops.upsample_nearest(conv, 2), 2))
    logs = ops.mean(ops.log(ops.square(logits) + 1.0)) / 3.0 + (1.0 - ops.mean(ops.log_softmax(logits)) ** 2.0)
    return ops.cross_entropy(logits, labels) + extra * 0.5 + avg + logs - ops.max(logits) / 2.0


def composite_parameters(rng):
    return {
        "img_data": rng.standard_normal((2, 2, 4, 4)),
        "labels_data": np.array([1, 3], np.int32),
        "k": rng.standard_normal((3, 2, 3, 3)) * 0.5, "kb": rng.standard_normal(3) * 0.1,
        "g": 1 + 0.1 * rng.standard_normal(3), "beta": 0.1 * rng.standard_normal(3),
        "lg": 1 + 0.1 * rng.standard_normal(12), "lb": 0.1 * rng.standard_normal(12),
        "wo": rng.standard_normal((4, 12)) * 0.3,
    }


def composite_run(p):
    tape = remat.Tape()
    tape.set_loss(composite_loss(tape, p))
    return store_all_gradients(tape)


def test_composite_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    p = composite_parameters(rng)
    _, grads = composite_run(p)
    eps = 1e-6
    for name in ["k", "kb", "g", "beta", "lg", "lb", "wo"]:
        flat = p[name].reshape(-1)
        picks = rng.choice(flat.size, size=min(flat.size, 6), replace=False)
        for i in picks:
            plus, minus = {**p, name: p[name].copy()}, {**p, name: p[name].copy()}
            plus[name].reshape(-1)[i] += eps
            minus[name].reshape(-1)[i] -= eps
            numeric = (composite_run(plus)[0] - composite_run(minus)[0]) / (2 * eps)
            assert grads[name].reshape(-1)[i] == pytest.approx(numeric, rel=1e-5, abs=1e-7), (name, i)


def test_composite_gradients_are_bitwise_equal_under_every_strategy():
    p = composite_parameters(np.random.default_rng(5))
    tape = remat.Tape()
    tape.set_loss(composite_loss(tape, p))
    reference = remat.run(tape, remat.plan(tape, remat.make_strategy("store-all")))
    for name in STRATEGIES:
        strategy = remat.make_strategy(name)
        try:
            report = remat.plan(tape, strategy, budget="60%")
        except remat.InfeasibleBudget as e:
            report = remat.plan(tape, strategy, budget=e.min_feasible_bytes)
        step = remat.run(tape, report)
        assert step.peak_bytes == report.peak_bytes, name
        assert step.recomputed_ops == report.recomputed_ops, name
        for param, grad in reference.gradients.items():
            assert step.gradients[param].tobytes() == grad.tobytes(), (name, param)


def test_operators_with_scalars_round_as_numpy():
    x = np.linspace(-2, 3, 12, dtype=np.float32).reshape(3, 4)
    y = np.linspace(1, 2, 12, dtype=np.float32).reshape(3, 4)
    tape = remat.Tape()
    a, b = tape.placeholder("a", x), tape.placeholder("b", y)
    two, three = np.float32(2), np.float32(3)
    cases = [
        (a + b, x + y), (a - b, x - y), (a * b, x * y), (a / b, x / y), (-a, -x),
        (a + 2.0, x + two), (2.0 + a, two + x), (a - 2.0, x - two), (2.0 - a, two - x),
        (a / 3.0, x / three), (3.0 / b, three / y), (a * 2.0, x * two), (2.0 * a, two * x),
    ]
    for value, expected in cases:
        got = value.eval()
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert got.tobytes() == expected.tobytes(), value
    np.testing.assert_allclose((b ** 2.0).eval(), y ** 2, rtol=1e-6)
    np.testing.assert_allclose((a @ ops.transpose(b)).eval(), x @ y.T, rtol=1e-6)
    assert a.shape == (3, 4) and a.dtype == np.float32


def test_wengert_list_and_values():
    tape = remat.Tape("tiny")
    x = tape.placeholder("x", shape=(2, 3))
    w = tape.parameter("w", np.ones((3, 3), np.float32))
    h = ops.relu(x @ w)
    tape.mark_stage(h)
    loss = ops.sum(h)
    tape.set_loss(loss)
    text = tape.to_string().splitlines()
    assert len(text) == len(tape) == 5
    assert text[0].startswith("n0 = placeholder x") and "(2,3)" in text[0]
    assert text[2].startswith("n2 = matmul(n0, n1)")
    assert "| stage" in text[3] and "<- loss" in text[-1]
    assert tape.loss == loss.id and not tape.recording
    assert tape.value(h.id).label == h.label == "n3 relu"
    assert tape.placeholders == ["x"] and tape.parameters == ["w"]
    doc = remat.explain(tape, remat.make_strategy("revolve"))
    assert doc["model"] == "tiny"
    with pytest.raises(remat.Error, match=r"no value is bound to placeholder 'x'"):
        remat.run(tape, remat.plan(tape, remat.make_strategy("store-all")))


def test_dropped_tape_lives_on_through_its_values():
    def build():
        tape = remat.Tape()
        w = tape.parameter("w", np.full((2, 2), 3.0))
        return ops.sum(w * w)  # the tape goes out of scope here; the value holds it
    import gc
    loss = build()
    gc.collect()
    tape = loss.tape
    tape.set_loss(loss)
    _, grads = store_all_gradients(tape)
    np.testing.assert_array_equal(grads["w"], np.full((2, 2), 6.0))


def test_misuse_raises_the_cpp_message():
    one, two = remat.Tape(), remat.Tape()
    a = one.placeholder("a", np.ones((2, 3), np.float32))
    b = two.placeholder("b", np.ones((2, 3), np.float32))
    with pytest.raises(remat.Error, match=r"^\[add\] input 1 was recorded on another tape"):
        a + b
    with pytest.raises(remat.Error, match=r"^\[concat\] input 1 was recorded on another tape"):
        ops.concat([a, b], 0)
    with pytest.raises(remat.Error, match=r"^\[matmul\] inner dimensions differ: \(2,3\) @ \(2,3\)"):
        a @ a
    with pytest.raises(remat.Error, match=r"^\[reshape\]"):
        ops.reshape(a, [4, 2])
    with pytest.raises(remat.Error, match=r"^\[slice\]"):
        ops.slice(a, 1, 2, 9)
    with pytest.raises(remat.Error, match=r"^\[tape\] parameter 'i' must be floating \(f32, f64, bf16 or f16\)"):
        one.parameter("i", np.ones(3, np.int32))
    with pytest.raises(remat.Error, match=r"^\[python\] parameter 'q': dtype int64 is not supported"):
        one.parameter("q", np.ones(3, np.int64))
    with pytest.raises(remat.Error, match=r"^\[python\] placeholder 's': dtype object is not supported"):
        one.placeholder("s", object())
    labels = one.placeholder("labels", np.ones(2, np.float32))
    with pytest.raises(remat.Error, match=r"^\[cross_entropy\]"):
        ops.cross_entropy(a, labels)
    with pytest.raises(remat.Error, match=r"^\[tape\] the name 'a' is already used"):
        one.placeholder("a", shape=(1,))
    with pytest.raises(remat.Error, match=r"^\[shape\] \(2,-3\) has a negative extent"):
        one.placeholder("n", shape=(2, -3))
    with pytest.raises(remat.Error, match=r"^\[python\] dtype int8 is not supported"):
        one.placeholder("d", shape=(2,), dtype=np.int8)
    with pytest.raises(remat.Error, match=r"^\[set_loss\] the loss must be a floating scalar"):
        one.set_loss(a)
    with pytest.raises(remat.Error, match=r"^\[set_loss\] the value was recorded on another tape"):
        one.set_loss(ops.sum(b))
    with pytest.raises(remat.Error, match=r"^\[python\] the tape has no loss yet"):
        remat.plan(one, remat.make_strategy("store-all"))
    with pytest.raises(remat.Error, match=r"^\[python\] the tape has no loss yet"):
        remat.Executor(one)
    with pytest.raises(TypeError, match="no truth value"):
        bool(a)
    with pytest.raises(TypeError):
        a + "text"
    one.set_loss(ops.sum(a))
    with pytest.raises(remat.Error, match=r"^\[relu\] the tape's loss is set, so recording is closed"):
        ops.relu(a)
    with pytest.raises(remat.Error, match=r"recording is closed"):
        a * 2.0
    with pytest.raises(remat.Error, match=r"recording is closed"):
        one.parameter("late", np.ones(2, np.float32))
    with pytest.raises(remat.Error, match=r"^\[tape\] no node n99"):
        one.value(99)


def test_runs_check_inputs_and_plans():
    tape = remat.Tape("mine")
    x = tape.placeholder("x", shape=(2, 2))
    w = tape.parameter("w", np.eye(2, dtype=np.float32))
    tape.set_loss(ops.sum(x @ w))
    report = remat.plan(tape, remat.make_strategy("store-all"))
    good = {"x": np.ones((2, 2), np.float32)}
    np.testing.assert_array_equal(remat.run(tape, report, inputs=good).gradients["w"], np.full((2, 2), 2.0))
    with pytest.raises(remat.Error, match=r"^\[python\] inputs: no placeholder named 'y' \(there are: x\)"):
        remat.run(tape, report, inputs={"y": good["x"]})
    with pytest.raises(remat.Error, match=r"^\[executor\].*placeholder 'x' expects"):
        remat.run(tape, report, inputs={"x": np.ones((3, 2), np.float32)})
    with pytest.raises(remat.Error, match=r"^\[executor\].*placeholder 'x' expects"):
        remat.run(tape, report, inputs={"x": np.ones((2, 2), np.float64)})
    with pytest.raises(TypeError):
        remat.run(tape, report, inputs=[good["x"]])
    twin = remat.Tape("mine")
    tx = twin.placeholder("x", shape=(2, 2))
    tw = twin.parameter("w", np.eye(2, dtype=np.float32))
    twin.set_loss(ops.sum(tx @ tw))
    with pytest.raises(remat.Error, match=r"a recorded tape runs only the plans made on it"):
        remat.run(twin, report, inputs=good)


def test_random_op_sequences_raise_or_record(zoo):
    """Fuzz-style: random ops on random shapes either record or raise remat.Error."""
    rng = np.random.default_rng(11)
    unary = [ops.relu, ops.tanh, ops.gelu, ops.exp, ops.softmax, ops.neg, lambda v: ops.sum(v, axes=int(rng.integers(-3, 3)))]
    binary = [ops.add, ops.mul, ops.sub, ops.div, ops.matmul, ops.mse, ops.cross_entropy,
              lambda a, b: ops.concat([a, b], int(rng.integers(-2, 3)))]
    recorded = raised = 0
    for _ in range(300):
        tape = remat.Tape()
        values = [tape.parameter(f"p{i}", np.ones(tuple(rng.integers(1, 4, size=rng.integers(0, 4))), np.float32))
                  for i in range(3)]
        for _ in range(4):
            try:
                if rng.random() < 0.5:
                    values.append(unary[rng.integers(len(unary))](values[rng.integers(len(values))]))
                else:
                    f = binary[rng.integers(len(binary))]
                    values.append(f(values[rng.integers(len(values))], values[rng.integers(len(values))]))
                recorded += 1
            except remat.Error as e:
                assert str(e).startswith("["), str(e)
                raised += 1
        last = values[-1]
        if last.shape and len(last.shape) > 0:
            last = ops.sum(last)
        if len(tape) > 3:
            tape.set_loss(last)
            step = remat.run(tape, remat.plan(tape, remat.make_strategy("greedy"), budget=None))
            assert step.peak_bytes == step.predicted_peak_bytes
    assert recorded > 50 and raised > 50


def test_stubs_name_every_export():
    """The .pyi stubs (editors' completion) name every export, op and public method."""
    import ast
    import pathlib

    package = pathlib.Path(__file__).resolve().parents[2] / "python" / "remat"

    def stub_names(path):
        names, classes = set(), {}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            if isinstance(node, ast.ClassDef):
                classes[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)} | {
                    n.target.id for n in node.body if isinstance(n, ast.AnnAssign)}
            if isinstance(node, ast.ImportFrom):
                names.update(alias.asname or alias.name for alias in node.names)
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(t.id for t in targets if isinstance(t, ast.Name))
        return names, classes

    top, classes = stub_names(package / "__init__.pyi")
    op_stubs, _ = stub_names(package / "ops.pyi")
    assert set(remat.__all__) <= top, set(remat.__all__) - top
    assert set(remat.OP_NAMES) == op_stubs - {"Value", "Axes", "List", "Optional", "Sequence", "Union"}
    for cls in ["Tape", "Value", "Chain", "ChainPlan", "Executor", "StepResult", "Model"]:
        public = {n for n in dir(getattr(remat, cls)) if not n.startswith("_")}
        inherited = classes.get("Model", set()) if cls == "Tape" else set()
        assert public <= classes[cls] | inherited, (cls, public - classes[cls] - inherited)
