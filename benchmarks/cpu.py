"""CPU timing of tfsvd.svd against tf.linalg.svd, torch.linalg.svd and jax.numpy.linalg.svd.

For each row (a batch of B matrices of M x N, float32) and each library, side by side in one
process: the forward pass alone and forward + backward of a loss that uses s, u and v,

    loss = sum(w_s * s) + sum(w_u * u) + sum(w_v * v)      (fixed random weights; thin factors,
                                                            full with --full-matrices)

each the minimum of several warm runs (after one untimed run that traces/compiles). TensorFlow
paths run under tf.function, JAX under jax.jit, PyTorch eagerly with autograd. Peers that are not
installed are skipped and named in the output.

    python benchmarks/cpu.py                       # the issue's 7 rows, 3 timed runs each
    python benchmarks/cpu.py --quick               # smaller batches, no large rows, 2 runs
    python benchmarks/cpu.py --rows 100000x3x3,2000x32x32 --runs 5
    python benchmarks/cpu.py --rounds 3            # every cell the minimum over 3 rounds
    python benchmarks/cpu.py --classes             # also other shapes of each size class
    python benchmarks/cpu.py --full-matrices       # full u and v (cpu_full.md, cpu_full.png)

On a shared machine other work inflates single measurements; --rounds repeats the whole sweep
(libraries interleaved) and keeps each cell's minimum. Each cell starts with a pause after its
warm-up run, so that the previous library's idle threads have stopped spinning.

After the table comes the minimum forward + backward speedup of each size class (min(M, N) <= 4,
16, 64, 512, larger) over tf.linalg.svd and over the faster of PyTorch and JAX, beside the
targets of issue 4.

Writes benchmarks/results/cpu.md (the markdown tables, with machine, load and versions) and
benchmarks/results/cpu.png (the times as bars, log scale).
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROWS = ("100000x3x3", "10000x8x8", "2000x32x32", "200x128x128", "8x512x512", "1x2048x2048",
        "1x4096x512")
QUICK_ROWS = ("10000x3x3", "1000x8x8", "200x32x32", "20x128x128")
# Other shapes of the same size classes (--classes): square, tall and wide, batches of other
# sizes, batches smaller than the thread pool or not a multiple of it. 2000x1024x3 is a batch of
# point clouds (rotation fitting in 3D vision), 5000x1000x2 another long thin one; 64x1000x8 and
# 256x500x6 long thin feature matrices. 4x64x64 (a few Jacobi-sized matrices per thread),
# 32x1000x16 and 512x1000x16 (long columns) and 200x64x500 (wide, past the Jacobi crossover) are
# the known weak spots of their classes.
CLASS_ROWS = ("50000x4x4", "200000x2x2", "30000x4x3", "2000x1024x3", "5000x1000x2",
              "5000x16x16", "20000x6x6", "3000x16x12", "64x1000x8", "256x500x6",
              "32x1000x16", "100x1000x16", "512x1000x16", "500x64x64", "1000x48x48", "400x40x64",
              "40x64x64", "20x64x64", "4x64x64", "100x256x64", "200x64x500", "50x256x256",
              "1x128x128", "1x384x384", "2x256x1024", "1x8192x256", "1x1024x1024", "2x1024x1024",
              "1x1536x2048", "3x384x384", "3x1024x1024")
# Issue 4's minimum forward + backward speedups: (largest min(M, N) of the class, over
# tf.linalg.svd, over the faster of PyTorch and JAX).
TARGETS = ((4, 5.0, 3.0), (16, 3.0, 2.0), (64, 2.0, 1.5), (512, 1.5, 1.0), (None, 2.0, 0.8))
LIBRARIES = ("tfsvd", "tf.linalg.svd", "torch", "jax")
RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def parse_row(text):
    b, m, n = (int(x) for x in text.lower().split("x"))
    return b, m, n


def load_average():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def scheduler_note():
    """The kernel release, and a scheduler setting that shapes multi-threaded timings where the
    kernel has it: guests with kernel.sched_vcpu_pack queue a woken thread on the busy vCPU of the
    thread that woke it, so an op split over two threads often ran on one."""
    note = f"kernel {platform.release()}"
    try:
        with open("/proc/sys/kernel/sched_vcpu_pack") as f:
            note += f", kernel.sched_vcpu_pack = {f.read().strip()}"
    except OSError:
        pass
    return note


# --------------------------------------------------------------------------------------------------
# the libraries: each returns {"fwd": fn, "fb": fn} of one numpy batch and its weights, where fn()
# runs once and returns when the result is ready


def make_tf(which, a, ws, wu, wv, full):
    import tensorflow as tf

    if which == "tfsvd":
        import tfsvd

        svd = tfsvd.svd
    else:
        svd = tf.linalg.svd
    a_t, ws_t, wu_t, wv_t = (tf.constant(x) for x in (a, ws, wu, wv))

    @tf.function(jit_compile=False)
    def fwd(x):
        return svd(x, full_matrices=full)

    @tf.function(jit_compile=False)
    def fb(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            s, u, v = svd(x, full_matrices=full)
            loss = tf.reduce_sum(ws_t * s) + tf.reduce_sum(wu_t * u) + tf.reduce_sum(wv_t * v)
        return loss, tape.gradient(loss, x)

    def run(f):
        def go():
            for t in f(a_t):
                t.numpy()
        return go

    return {"fwd": run(fwd), "fb": run(fb)}


def make_torch(a, ws, wu, wv, full):
    import torch

    x0 = torch.from_numpy(a)
    ws_t, wu_t, wv_t = (torch.from_numpy(w) for w in (ws, wu, wv))

    def fwd():
        with torch.no_grad():
            torch.linalg.svd(x0, full_matrices=full)

    def fb():
        x = x0.clone().requires_grad_(True)
        u, s, vh = torch.linalg.svd(x, full_matrices=full)
        v = vh.mH
        loss = (ws_t * s).sum() + (wu_t * u).sum() + (wv_t * v).sum()
        (g,) = torch.autograd.grad(loss, x)
        g.numpy()

    return {"fwd": fwd, "fb": fb}


def make_jax(a, ws, wu, wv, full):
    import jax
    import jax.numpy as jnp

    x0 = jnp.asarray(a)
    ws_j, wu_j, wv_j = (jnp.asarray(w) for w in (ws, wu, wv))

    @jax.jit
    def fwd(x):
        return jnp.linalg.svd(x, full_matrices=full)

    def loss(x):
        u, s, vh = jnp.linalg.svd(x, full_matrices=full)
        v = jnp.swapaxes(vh, -1, -2)
        return jnp.sum(ws_j * s) + jnp.sum(wu_j * u) + jnp.sum(wv_j * v)

    fb = jax.jit(jax.value_and_grad(loss))
    return {"fwd": lambda: jax.block_until_ready(fwd(x0)),
            "fb": lambda: jax.block_until_ready(fb(x0))}


def available_libraries(wanted):
    found, missing = [], {}
    for name in wanted:
        try:
            if name in ("tfsvd", "tf.linalg.svd"):
                import tensorflow  # noqa: F401
                if name == "tfsvd":
                    import tfsvd  # noqa: F401
            elif name == "torch":
                import torch  # noqa: F401
            elif name == "jax":
                import jax  # noqa: F401
            found.append(name)
        except Exception as e:  # ImportError, or a broken install
            missing[name] = f"{type(e).__name__}: {e}"
    return found, missing


def make(name, a, ws, wu, wv, full=False):
    if name in ("tfsvd", "tf.linalg.svd"):
        return make_tf(name, a, ws, wu, wv, full)
    if name == "torch":
        return make_torch(a, ws, wu, wv, full)
    return make_jax(a, ws, wu, wv, full)


# Idle worker threads of the library timed before keep spinning for a while (JAX's for ~150 ms,
# which halved tfsvd's speed on a 2-core machine for its first few runs): each cell waits this
# long after its warm-up, so that no library is timed against another's spinning threads.
SETTLE_SECONDS = 0.3


def time_min(fn, runs):
    fn()  # warm-up: tracing, compilation, first allocations
    time.sleep(SETTLE_SECONDS)
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def openblas_kernels():
    """tfsvd's OpenBLAS kernels, and the environment variables that pinned them, if any."""
    import tfsvd

    kernels = tfsvd.build_info()["blas_kernels"]
    pins = [f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
            if k in os.environ]
    return kernels + (f" (pinned by {', '.join(pins)})" if pins else "")


def versions(libs):
    out = {"numpy": np.__version__, "python": platform.python_version()}
    for name in libs:
        if name in ("tfsvd", "tf.linalg.svd"):
            import tensorflow as tf
            out["tensorflow"] = tf.__version__
            if name == "tfsvd":
                out["tfsvd OpenBLAS kernels"] = openblas_kernels()
        elif name == "torch":
            import torch
            out["torch"] = f"{torch.__version__} ({torch.get_num_threads()} threads)"
        elif name == "jax":
            import jax
            out["jax"] = jax.__version__
    return out


# --------------------------------------------------------------------------------------------------
# output


def fmt_ms(x):
    if x is None:
        return "-"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def table(rows, libs, results):
    peers = [p for p in libs if p != "tfsvd"]
    head = ["B x M x N", "pass"] + [f"{p} ms" for p in libs]
    if "tfsvd" in libs:
        head += [f"{p} / tfsvd" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        for kind, label in (("fwd", "forward"), ("fb", "fwd+bwd")):
            cells = [row, label]
            times = {p: results.get((row, p, kind)) for p in libs}
            cells += [fmt_ms(times[p]) for p in libs]
            if "tfsvd" in libs:
                base = times["tfsvd"]
                for p in peers:
                    t = times[p]
                    cells.append("-" if (t is None or not base) else f"{t / base:.2f}x")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def size_class(row):
    _, m, n = parse_row(row)
    k = min(m, n)
    for limit, over_tf, over_peer in TARGETS:
        if limit is None or k <= limit:
            return limit, over_tf, over_peer
    raise AssertionError(row)


def class_table(rows, libs, results):
    """Per size class: the smallest fwd+bwd speedup over tf.linalg.svd and over the faster peer
    (PyTorch or JAX) among the measured rows, beside the targets."""
    if "tfsvd" not in libs:
        return ""
    peers = [p for p in ("torch", "jax") if p in libs]
    head = ["min(M, N)", "rows", "over tf.linalg.svd", "target", "over best peer", "target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for limit, over_tf, over_peer in TARGETS:
        members = [r for r in rows
                   if size_class(r)[0] == limit and results.get((r, "tfsvd", "fb"))]
        if not members:
            continue
        worst_tf = worst_peer = None
        for r in members:
            base = results[(r, "tfsvd", "fb")]
            t_tf = results.get((r, "tf.linalg.svd", "fb"))
            if t_tf is not None and (worst_tf is None or t_tf / base < worst_tf[0]):
                worst_tf = (t_tf / base, r)
            peer_times = [results[(r, p, "fb")] for p in peers if results.get((r, p, "fb"))]
            if peer_times and (worst_peer is None or min(peer_times) / base < worst_peer[0]):
                worst_peer = (min(peer_times) / base, r)
        met = ((worst_tf is None or worst_tf[0] >= over_tf)
               and (worst_peer is None or worst_peer[0] >= over_peer))
        label = f"<= {limit}" if limit is not None else "larger"
        cells = [label, str(len(members)),
                 "-" if worst_tf is None else f"{worst_tf[0]:.2f}x ({worst_tf[1]})",
                 f"{over_tf:g}x",
                 "-" if worst_peer is None else f"{worst_peer[0]:.2f}x ({worst_peer[1]})",
                 f"{over_peer:g}x", "yes" if met else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows, libs, results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(max(14, 0.8 * len(rows)), 5), sharey=False)
    width = 0.8 / max(1, len(libs))
    x = np.arange(len(rows))
    for ax, (kind, title) in zip(axes, (("fwd", "forward"), ("fb", "forward + backward"))):
        for i, lib in enumerate(libs):
            vals = [results.get((row, lib, kind)) for row in rows]
            vals = [np.nan if v is None else v for v in vals]
            ax.bar(x + (i - (len(libs) - 1) / 2) * width, vals, width, label=lib)
        ax.set_xticks(x)
        ax.set_xticklabels(rows, rotation=30, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("ms (min of warm runs, lower is better)")
        ax.set_title(f"float32 SVD, {title}")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", help="comma-separated BxMxN rows (default: the issue's 7)")
    parser.add_argument("--classes", action="store_true",
                        help="also time other shapes of each size class (CLASS_ROWS)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller batches, no large rows, 2 runs (a smoke test)")
    parser.add_argument("--runs", type=int, help="timed warm runs per cell (default 3; quick 2)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the whole measurement this many times, keep each minimum")
    parser.add_argument("--libraries", default=",".join(LIBRARIES),
                        help=f"comma-separated subset of {','.join(LIBRARIES)}")
    parser.add_argument("--full-matrices", action="store_true",
                        help="full u and v (every library), written to cpu_full.md/.png")
    parser.add_argument("--out", default=str(RESULTS), help="directory for cpu.md and cpu.png")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)

    if args.rows:
        rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    else:
        rows = list(QUICK_ROWS if args.quick else ROWS)
    if args.classes:
        rows += [r for r in CLASS_ROWS if r not in rows]
    runs = args.runs or (2 if args.quick else 3)
    wanted = [x.strip() for x in args.libraries.split(",") if x.strip()]
    unknown = [x for x in wanted if x not in LIBRARIES]
    if unknown:
        parser.error(f"unknown libraries {unknown}; known: {LIBRARIES}")
    libs, missing = available_libraries(wanted)
    for name, why in missing.items():
        print(f"# skipping {name}: not available ({why})", file=sys.stderr)

    load_before = load_average()
    results = {}
    for round_ in range(max(1, args.rounds)):
        for row in rows:
            b, m, n = parse_row(row)
            rng = np.random.default_rng(0)
            a = rng.standard_normal((b, m, n)).astype(np.float32)
            k = min(m, n)
            ws = rng.standard_normal((b, k)).astype(np.float32)
            wu = rng.standard_normal((b, m, m if args.full_matrices else k)).astype(np.float32)
            wv = rng.standard_normal((b, n, n if args.full_matrices else k)).astype(np.float32)
            for lib in libs:
                fns = make(lib, a, ws, wu, wv, args.full_matrices)
                for kind in ("fwd", "fb"):
                    key = (row, lib, kind)
                    try:
                        t = time_min(fns[kind], runs)
                        results[key] = min(t, results.get(key, t))
                    except Exception as e:  # a peer that cannot do this row (memory, shape)
                        print(f"# {lib} {kind} {row}: failed ({type(e).__name__}: {e})",
                              file=sys.stderr)
                    print(f"# round {round_ + 1} {row} {lib} {kind}: "
                          f"{fmt_ms(results.get(key))} ms", file=sys.stderr, flush=True)

    md = table(rows, libs, results)
    info = versions(libs)
    lines = [
        "# CPU timings: tfsvd.svd against its peers",
        "",
        "float32" + (", full_matrices=True" if args.full_matrices else "")
        + f"; ms, minimum of {runs} warm runs"
        + (f" in each of {args.rounds} rounds" if args.rounds > 1 else "")
        + "; loss = sum(w_s s) + sum(w_u u) + sum(w_v v) "
        "for fwd+bwd; ratios are peer time / tfsvd time (above 1: tfsvd is faster).",
        "",
        f"- machine: {cpu_model()}, {os.cpu_count()} CPUs, {scheduler_note()}; load average "
        f"before {load_before}, after {load_average()}",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        "- " + ", ".join(f"{k} {v}" for k, v in info.items()),
    ]
    if missing:
        lines.append("- not measured (not installed): " + ", ".join(missing))
    lines += ["", md, ""]
    classes = class_table(rows, libs, results)
    if classes:
        lines += ["Smallest forward + backward speedup per size class (issue 4's targets):", "",
                  classes, ""]
    text = "\n".join(lines)
    print(text)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "cpu_full" if args.full_matrices else "cpu"
    (out / f"{stem}.md").write_text(text)
    if not args.no_plot:
        try:
            plot(rows, libs, results, out / f"{stem}.png")
        except ImportError as e:
            print(f"# no plot: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
