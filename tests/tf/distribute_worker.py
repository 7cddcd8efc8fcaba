"""A training step with tfsvd under a distribution strategy; run as a script by
test_distribute.py (devices and clusters must be set before TensorFlow starts).

usage: distribute_worker.py mirrored
       distribute_worker.py multiworker TASK_INDEX PORT0 PORT1
Prints "losses: l0 l1 ..." on success."""

import json
import os
import sys

mode = sys.argv[1]
if mode == "multiworker":
    task, ports = int(sys.argv[2]), sys.argv[3:5]
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"localhost:{p}" for p in ports]},
        "task": {"type": "worker", "index": task},
    })

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfsvd  # noqa: E402

if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 3)
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(3)])
else:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()

rng = np.random.default_rng(0)
features = rng.standard_normal((96, 6, 3)).astype("float32")
targets = rng.standard_normal((96, 6, 3)).astype("float32")
dataset = tf.data.Dataset.from_tensor_slices((features, targets)).repeat().batch(24)
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
dataset = strategy.experimental_distribute_dataset(dataset.with_options(options))

with strategy.scope():
    weight = tf.Variable(tf.eye(3) + 0.1 * tf.random.stateless_normal((3, 3), [1, 2]))
    optimizer = tf.keras.optimizers.SGD(0.05)


@tf.function
def train_step(iterator):
    def step(x, y):
        with tf.GradientTape() as tape:
            # Procrustes: project x W onto the nearest orthonormal frames, match y.
            s, u, v = tfsvd.svd(tf.matmul(x, weight))
            frames = tf.matmul(u, v, adjoint_b=True)
            loss = tf.reduce_sum(tf.square(frames - y)) / 96.0 + 1e-3 * tf.reduce_sum(s)
        grads = tape.gradient(loss, [weight])
        optimizer.apply_gradients(zip(grads, [weight]))
        return loss

    per_replica = strategy.run(step, args=next(iterator))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)


iterator = iter(dataset)
losses = [float(train_step(iterator)) for _ in range(5)]
assert strategy.num_replicas_in_sync == (3 if mode == "mirrored" else 2), \
    strategy.num_replicas_in_sync
assert all(np.isfinite(losses)), losses
print("losses:", " ".join(f"{x:.6f}" for x in losses))
