"""Training steps with tfsvd under MirroredStrategy (3 logical CPUs) and
MultiWorkerMirroredStrategy (two processes on localhost)."""

import os
import socket
import subprocess
import sys

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distribute_worker.py")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def losses_from(output):
    line = [l for l in output.splitlines() if l.startswith("losses:")][-1]
    return [float(x) for x in line.split()[1:]]


def test_mirrored_strategy_on_logical_cpus():
    out = subprocess.run([sys.executable, WORKER, "mirrored"], env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    losses = losses_from(out.stdout)
    assert losses[-1] < losses[0]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_mirrored_strategy_on_localhost():
    ports = [str(p) for p in free_ports(2)]
    workers = [subprocess.Popen([sys.executable, WORKER, "multiworker", str(i), *ports], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    outputs = []
    try:
        for w in workers:
            stdout, stderr = w.communicate(timeout=300)
            assert w.returncode == 0, stderr[-3000:]
            outputs.append(losses_from(stdout))
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    # Both workers run the same synchronous steps: identical all-reduced losses, going down.
    assert outputs[0] == outputs[1]
    assert outputs[0][-1] < outputs[0][0]
