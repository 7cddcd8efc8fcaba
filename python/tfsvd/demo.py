"""python -m tfsvd.demo: train a small model with an SVD inside, in graph mode.

The task is robust rotation fitting (weighted Procrustes/Kabsch, as in 3D registration): each
example is a cloud of point pairs (p_i, q_i) where most q_i = R p_i + noise and some are outliers.
A small per-point network predicts weights w_i; the rotation is the weighted Kabsch solution
R = V diag(1, 1, det(V U^T)) U^T from the SVD of H = sum_i w_i p_i q_i^T; the loss is the
distance of R to the true rotation. The network has to learn to spot outliers through the SVD.
The same model is then trained with tf.linalg.svd for a side-by-side time per step.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfsvd  # noqa: E402


def random_rotations(rng, count):
    q, r = np.linalg.qr(rng.standard_normal((count, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
    q[np.linalg.det(q) < 0, :, 0] *= -1
    return q


def make_batch(rng, batch, points, outlier_fraction, noise):
    rotations = random_rotations(rng, batch)
    p = rng.standard_normal((batch, points, 3))
    q = np.einsum("bij,bpj->bpi", rotations, p) + noise * rng.standard_normal((batch, points, 3))
    outliers = rng.random((batch, points)) < outlier_fraction
    q[outliers] = 2.0 * rng.standard_normal((int(outliers.sum()), 3))
    return (tf.constant(p, tf.float32), tf.constant(q, tf.float32),
            tf.constant(rotations, tf.float32))


def det3(x):
    """Determinants of a batch of 3x3 matrices: x0 . (x1 x x2) over the columns."""
    return tf.reduce_sum(x[..., 0] * tf.linalg.cross(x[..., 1], x[..., 2]), axis=-1)


class WeightedKabsch(tf.Module):
    """Per-point MLP -> weights -> weighted Kabsch rotation through an SVD."""

    def __init__(self, svd_fn, seed=0):
        super().__init__()
        init = tf.keras.initializers.GlorotUniform(seed=seed)
        self.w1 = tf.Variable(init((8, 32)))
        self.b1 = tf.Variable(tf.zeros([32]))
        self.w2 = tf.Variable(init((32, 1)))
        self.b2 = tf.Variable(tf.zeros([1]))
        self.svd_fn = svd_fn

    def __call__(self, p, q):
        norms = tf.stack([tf.norm(p, axis=-1), tf.norm(q, axis=-1)], axis=-1)
        features = tf.concat([p, q, norms], axis=-1)
        hidden = tf.nn.relu(tf.matmul(features, self.w1) + self.b1)
        weights = tf.nn.softplus(tf.matmul(hidden, self.w2) + self.b2)  # [batch, points, 1]
        h = tf.matmul(p * weights, q, transpose_a=True)  # [batch, 3, 3]
        _, u, v = self.svd_fn(h)
        # Reflection fix: flip v's last column where det(V U^T) < 0. The sign is piecewise
        # constant (no gradient), so it is computed from 3x3 determinants outside the tape.
        d = tf.stop_gradient(tf.sign(det3(v) * det3(u)))
        flip = tf.concat([tf.ones_like(d)[..., None, None] * tf.ones([1, 2]), d[..., None, None]],
                         axis=-1)
        return tf.matmul(v * flip, u, transpose_b=True)


def rotation_loss(predicted, target):
    return tf.reduce_mean(tf.reduce_sum(tf.square(predicted - target), axis=[-2, -1]))


def progress(name, step, steps, loss, interactive):
    """A bar redrawn in place on a terminal; a line every 10% of the steps otherwise."""
    if interactive:
        done = step * 30 // steps
        sys.stdout.write(f"\r  {name:14s} [{'#' * done}{'.' * (30 - done)}] "
                         f"step {step:4d}/{steps}  loss {loss:.4f}")
        if step == steps:
            sys.stdout.write("\n")
    elif step == steps or step % max(1, steps // 10) == 0:
        sys.stdout.write(f"  {name:14s} {step * 100 // steps:3d}%  step {step:4d}/{steps}  "
                         f"loss {loss:.4f}\n")
    sys.stdout.flush()


def train(name, svd_fn, data, steps, learning_rate, interactive):
    model = WeightedKabsch(svd_fn)
    optimizer = tf.keras.optimizers.Adam(learning_rate)

    @tf.function
    def step(p, q, r):
        with tf.GradientTape() as tape:
            loss = rotation_loss(model(p, q), r)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    losses, times = [], []
    for i in range(steps):
        p, q, r = data[i % len(data)]
        start = time.perf_counter()
        loss = float(step(p, q, r))
        times.append(time.perf_counter() - start)
        losses.append(loss)
        progress(name, i + 1, steps, loss, interactive)
    # The first steps include tracing; time the warm ones.
    warm = sorted(times[min(5, steps - 1):])
    return losses, warm[len(warm) // 2]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tfsvd.demo",
        description="Train a weighted-Kabsch rotation model (SVD inside, graph mode) with "
                    "tfsvd.svd and with tf.linalg.svd; print the loss going down and the "
                    "time per step of each.")
    parser.add_argument("--steps", type=int, default=150, help="training steps per run (150)")
    parser.add_argument("--batch", type=int, default=512, help="point clouds per step (512)")
    parser.add_argument("--points", type=int, default=64, help="point pairs per cloud (64)")
    parser.add_argument("--outliers", type=float, default=0.4,
                        help="fraction of outlier pairs (0.4)")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (0.01)")
    parser.add_argument("--no-compare", action="store_true",
                        help="train with tfsvd only, skip the tf.linalg.svd run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 10:
        parser.error("--steps must be at least 10")

    info = tfsvd.build_info()
    print(f"tfsvd {info['version']} on TensorFlow {info['tensorflow_running']} "
          f"(LAPACK: {info['lapack']}, CUDA: {info['cuda']})")
    print(f"Weighted Kabsch: {args.batch} clouds x {args.points} point pairs, "
          f"{args.outliers:.0%} outliers, {args.steps} steps\n")
    rng = np.random.default_rng(args.seed)
    data = [make_batch(rng, args.batch, args.points, args.outliers, 0.01) for _ in range(8)]

    runs = [("tfsvd.svd", tfsvd.svd)]
    if not args.no_compare:
        runs.append(("tf.linalg.svd", tf.linalg.svd))
    results = {}
    for name, fn in runs:
        results[name] = train(name, fn, data, args.steps, args.lr, sys.stdout.isatty())

    losses, step_time = results["tfsvd.svd"]
    tenth = max(1, args.steps // 10)
    print("\nloss (tfsvd.svd):")
    for i in list(range(0, args.steps, tenth)) + [args.steps - 1]:
        print(f"  step {i + 1:4d}  {losses[i]:.5f}")
    first, last = np.mean(losses[:tenth]), np.mean(losses[-tenth:])
    print(f"mean loss over the first {tenth} steps {first:.4f} -> last {tenth} steps {last:.4f}"
          f" ({first / max(last, 1e-30):.1f}x lower)")
    print(f"\nmedian time per training step: tfsvd.svd {step_time * 1e3:.2f} ms", end="")
    if "tf.linalg.svd" in results:
        ref_losses, ref_time = results["tf.linalg.svd"]
        print(f", tf.linalg.svd {ref_time * 1e3:.2f} ms ({ref_time / step_time:.2f}x)")
        print(f"final loss: tfsvd.svd {np.mean(losses[-tenth:]):.5f}, "
              f"tf.linalg.svd {np.mean(ref_losses[-tenth:]):.5f}")
    else:
        print()
    if not last < first:
        print("the loss did not go down", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
