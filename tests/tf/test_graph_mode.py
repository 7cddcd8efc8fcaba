"""The gradient in graph mode: tf.function with unknown shapes, tf.while_loop, SavedModel with a
dynamic signature, values-only gradients without a second SVD, options kept in the graph."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfsvd
from tfsvd import _svd

RNG = np.random.default_rng(0)


def loss_fn(a):
    s, u, v = tfsvd.svd(a)
    k = tf.shape(s)[-1]
    return tf.reduce_sum(s * s) + tf.reduce_sum(tf.matmul(u, v, adjoint_b=True)[..., :k, :k])


def eager_gradient(a):
    with tf.GradientTape() as tape:
        tape.watch(a)
        loss = loss_fn(a)
    return tape.gradient(loss, a)


@pytest.mark.parametrize("signature", [
    tf.TensorSpec([None, None], tf.float64),
    tf.TensorSpec(None, tf.float64),
    tf.TensorSpec([None, None, None], tf.float64),
], ids=["matrix", "unknown_rank", "batch"])
def test_gradient_in_tf_function_with_unknown_shapes(signature):
    @tf.function(input_signature=[signature])
    def grad(a):
        with tf.GradientTape() as tape:
            tape.watch(a)
            loss = loss_fn(a)
        return tape.gradient(loss, a)

    rank = signature.shape.rank or 2
    for shape in [(4, 4), (6, 3), (3, 6)]:
        shape = (2,) * (rank - 2) + shape
        a = tf.constant(RNG.standard_normal(shape))
        np.testing.assert_allclose(grad(a).numpy(), eager_gradient(a).numpy(), rtol=1e-12,
                                   atol=1e-12)
    assert len(grad._list_all_concrete_functions()) == 1  # one trace served every shape


def test_gradient_through_while_loop():
    a = tf.constant(RNG.standard_normal((5, 3)))

    @tf.function
    def loss_of(a):
        def body(i, x, acc):
            s, u, v = tfsvd.svd(x)
            return i + 1, x * 0.9, acc + tf.reduce_sum(s) + tf.reduce_sum(u[:, 0] * u[:, 0] * s[0])
        _, _, acc = tf.while_loop(lambda i, x, acc: i < 3, body,
                                  (tf.constant(0), a, tf.constant(0.0, tf.float64)))
        return acc

    with tf.GradientTape() as tape:
        tape.watch(a)
        loss = loss_of(a)
    grad = tape.gradient(loss, a).numpy()
    # Each iteration sees 0.9^i a: d/da sum_i sum(s(0.9^i a)) + s0 = sum_i 0.9^i (U V^T + u0 v0^T).
    u, s, vh = np.linalg.svd(a.numpy(), full_matrices=False)
    per_iteration = u @ vh + np.outer(u[:, 0], vh[0])
    np.testing.assert_allclose(grad, (1 + 0.9 + 0.81) * per_iteration, rtol=1e-10, atol=1e-12)


def op_types(concrete_function):
    """Op types in a function's graph and in every function it calls."""
    graph_def = concrete_function.graph.as_graph_def()
    types = [node.op for node in graph_def.node]
    for function in graph_def.library.function:
        types += [node.op for node in function.node_def]
    return types


def test_values_only_gradient_runs_no_second_svd():
    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.float32)])
    def grad(a):
        with tf.GradientTape() as tape:
            tape.watch(a)
            loss = tf.reduce_sum(tfsvd.svd(a, compute_uv=False))
        return tape.gradient(loss, a)

    types = op_types(grad.get_concrete_function())
    assert types.count("TfsvdSvd") == 1
    assert "TfsvdSvdGrad" in types
    assert not any(t in ("Svd", "BatchSvd") for t in types)
    a = RNG.standard_normal((3, 5, 4)).astype(np.float32)
    u, _, vh = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(grad(a).numpy(), u @ vh, atol=1e-5)


def test_values_only_call_keeps_vectors_only_when_a_gradient_may_be_taken():
    a = tf.constant(RNG.standard_normal((4, 3)))
    assert not _svd._gradient_may_be_taken(a)  # eager, no tape: s alone, no vectors computed
    with tf.GradientTape() as tape:
        tape.watch(a)
        assert _svd._gradient_may_be_taken(a)
        loss = tf.reduce_sum(tfsvd.svd(a, compute_uv=False))
    u, _, vh = np.linalg.svd(a.numpy(), full_matrices=False)
    np.testing.assert_allclose(tape.gradient(loss, a).numpy(), u @ vh, atol=1e-12)


def _tfsvd_ops(concrete_function):
    """The TfsvdSvd nodes of a function's graph and of the functions it calls."""
    graph_def = concrete_function.graph.as_graph_def()
    nodes = [n for n in graph_def.node if n.op == "TfsvdSvd"]
    for function in graph_def.library.function:
        nodes += [n for n in function.node_def if n.op == "TfsvdSvd"]
    return nodes


def test_values_only_inference_graph_computes_no_vectors():
    """Traced with no tape recording (inference, serving): the op computes values only, like
    tf.linalg.svd(compute_uv=False)."""
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float64)])
    def values(a):
        return tfsvd.svd(a, compute_uv=False)

    nodes = _tfsvd_ops(values.get_concrete_function())
    assert len(nodes) == 1
    assert not nodes[0].attr["compute_uv"].b and not nodes[0].attr["keep_uv"].b
    a = RNG.standard_normal((6, 4))
    np.testing.assert_allclose(values(a).numpy(), np.linalg.svd(a, compute_uv=False), rtol=1e-12)


def test_values_only_graph_differentiated_from_outside_recovers_the_vectors():
    """The same inference graph differentiated after all, from a tape around the tf.function
    call: the backward pass computes the thin vectors itself (the one case of a second SVD)."""
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float64)])
    def loss(a):
        return tf.reduce_sum(tfsvd.svd(a, compute_uv=False, grad_method="exact"))

    a = tf.constant(RNG.standard_normal((6, 4)))
    loss(a)  # traced here, with no tape
    with tf.GradientTape() as tape:
        tape.watch(a)
        value = loss(a)
    u, _, vh = np.linalg.svd(a.numpy(), full_matrices=False)
    np.testing.assert_allclose(tape.gradient(value, a).numpy(), u @ vh, atol=1e-12)


def test_raw_values_only_op_is_differentiable():
    """The op run values-only without keep_uv, under a tape: the gradient computes the vectors
    (thin, with the op's algorithm) instead of refusing."""
    from tfsvd import _ops

    a = tf.constant(RNG.standard_normal((5, 7)))
    s, u, v = _ops.tfsvd_svd(a, Treal=tf.float64, compute_uv=False)
    assert u.shape == (0,) and v.shape == (0,)

    @tf.function
    def grad(a):
        with tf.GradientTape() as tape:
            tape.watch(a)
            s, _, _ = _ops.tfsvd_svd(a, Treal=tf.float64, compute_uv=False, algorithm="gesvd")
        return tape.gradient(s, a)

    nodes = _tfsvd_ops(grad.get_concrete_function(a))
    assert len(nodes) == 2 and all(n.attr["algorithm"].s == b"gesvd" for n in nodes)
    u, _, vh = np.linalg.svd(a.numpy(), full_matrices=False)
    np.testing.assert_allclose(grad(a).numpy(), u @ vh, atol=1e-12)


@pytest.mark.parametrize("method,eps,order", [("taylor", None, 4), ("lorentzian", 1e-6, 9),
                                              ("exact", None, 9), ("stable", 1e-3, 9)])
def test_gradient_options_are_op_attributes(method, eps, order):
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def f(a):
        return tfsvd.svd(a, grad_method=method, grad_eps=eps, grad_order=order)

    graph = f.get_concrete_function().graph
    (op,) = [op for op in graph.get_operations() if op.type == "TfsvdSvd"]
    assert op.get_attr("grad_method") == method.encode()
    assert op.get_attr("grad_order") == order
    assert op.get_attr("grad_eps") == pytest.approx(-1.0 if eps is None else eps)


@pytest.mark.parametrize("kwargs,error", [
    (dict(grad_method="fast"), ValueError),
    (dict(grad_method=None), ValueError),
    (dict(grad_eps=-1e-3), ValueError),
    (dict(grad_eps=float("nan")), ValueError),
    (dict(grad_eps="small"), TypeError),
    (dict(grad_order=-1), ValueError),
    (dict(grad_order=2.5), TypeError),
])
def test_bad_gradient_options_fail_at_call_time(kwargs, error):
    with pytest.raises(error, match="grad_"):
        tfsvd.svd(tf.eye(3), **kwargs)


def test_raw_op_rejects_unknown_method():
    from tfsvd import _ops
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match="grad_method"):
        _ops.tfsvd_svd(tf.eye(3), grad_method="fast")


SAVE_SCRIPT = textwrap.dedent("""
    import sys, tensorflow as tf, tfsvd

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.float64)])
        def __call__(self, a):
            s, u, v = tfsvd.svd(a, full_matrices=True, grad_method="lorentzian")
            k = tf.shape(s)[-1]
            return tf.reduce_sum(s) + tf.reduce_sum(tf.matmul(u[..., :k], v[..., :k],
                                                              adjoint_b=True))

    tf.saved_model.save(Model(), sys.argv[1])
""")

LOAD_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf, tfsvd
    loaded = tf.saved_model.load(sys.argv[1])
    rng = np.random.default_rng(0)
    for shape in [(2, 4, 4), (1, 7, 3), (3, 2, 6)]:
        a = tf.constant(rng.standard_normal(shape))
        with tf.GradientTape() as tape:
            tape.watch(a)
            loss = loaded(a)
        grad = tape.gradient(loss, a).numpy()
        # d/da [sum s + sum(U V^H)] = U V^T + sum over rows/cols of U V^T propagated: compare
        # with finite differences.
        h, fd = 1e-6, np.zeros(shape)
        for idx in np.ndindex(shape):
            e = np.zeros(shape); e[idx] = h
            fd[idx] = (loaded(tf.constant(a.numpy() + e)) - loaded(tf.constant(a.numpy() - e))
                       ).numpy() / (2 * h)
        err = np.abs(grad - fd).max() / np.abs(fd).max()
        assert err < 1e-6, (shape, err)
    print("ok")
""")


def test_saved_model_with_dynamic_signature_round_trips(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    path = str(tmp_path / "model")
    for script in (SAVE_SCRIPT, LOAD_SCRIPT):  # each in a fresh process
        out = subprocess.run([sys.executable, "-c", script, path], env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


def test_gauge_monitor_flags_phase_dependent_losses():
    rng = np.random.default_rng(4)
    a = tf.constant(rng.standard_normal((5, 4)) + 1j * rng.standard_normal((5, 4)))
    monitor = tfsvd.GaugeMonitor()

    def gradient(loss_of_factors):
        with tf.GradientTape() as tape:
            tape.watch(a)
            s, u, v = tfsvd.svd(a, gauge_monitor=monitor)
            loss = loss_of_factors(s, u, v)
        return tape.gradient(loss, a)

    # Gauge invariant: U diag(s) V^H-type quantities. The violation stays at rounding level.
    gradient(lambda s, u, v: tf.math.real(tf.reduce_sum(
        tf.matmul(u * tf.cast(s, u.dtype) ** 2, v, adjoint_b=True))))
    assert monitor.violation.numpy() < 1e-12
    # Depends on the phase of u's first column: d/dt Im(e^{it} sum_i u_i0) = Re(sum_i u_i0),
    # which is nonzero (the canonical pivot of the column is real positive).
    gradient(lambda s, u, v: tf.math.imag(tf.reduce_sum(u[:, 0])))
    assert monitor.violation.numpy() > 1e-2
    monitor.reset()
    assert monitor.violation.numpy() == 0.0


def test_gauge_monitor_works_inside_tf_function():
    monitor = tfsvd.GaugeMonitor()

    @tf.function
    def step(a):
        with tf.GradientTape() as tape:
            tape.watch(a)
            s, u, v = tfsvd.svd(a, gauge_monitor=monitor)
            loss = tf.math.imag(u[0, 1])
        return tape.gradient(loss, a)

    rng = np.random.default_rng(6)
    step(tf.constant(rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4))))
    assert monitor.violation.numpy() > 1e-2
