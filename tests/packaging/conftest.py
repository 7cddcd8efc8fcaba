"""Fixtures for the packaging tests: the release wheel and a fresh virtual environment with it.

The wheel is built with docker/build_wheel.sh (about 1.5 min: an isolated build that installs
TensorFlow into the build environment), then installed with pip into a new venv that does not
see this environment's packages (about 1 min: pip downloads TensorFlow 2.21). TFSVD_TEST_WHEEL
selects what the wheel tests use:

    unset or 1             build the wheel from this source tree into a temporary directory
    PATH                   test that wheel (a .whl file, or a directory holding one tfsvd wheel),
                           e.g. the one docker/Dockerfile has just built into /dist
    0                      skip the wheel tests (they say so in the summary)
"""

import glob
import os
import pathlib
import subprocess
import sys
import time

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD_WHEEL = REPO_ROOT / "docker" / "build_wheel.sh"
CHECK_WHEEL = REPO_ROOT / "docker" / "check_wheel.py"


def _tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


def _child_env(**extra):
    """The environment for child processes: no PYTHONPATH leaking into them, quiet TensorFlow."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def child_env():
    """_child_env as a fixture (the test modules cannot import this conftest by name)."""
    return _child_env


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """Path of the tfsvd release wheel under test."""
    setting = os.environ.get("TFSVD_TEST_WHEEL", "").strip()
    if setting == "0":
        pytest.skip("TFSVD_TEST_WHEEL=0: the wheel build and fresh-venv install tests are switched off")
    if setting not in ("", "1"):
        path = pathlib.Path(setting)
        if path.is_dir():
            found = sorted(path.glob("tfsvd-*.whl"))
            assert len(found) == 1, f"TFSVD_TEST_WHEEL={setting}: expected one tfsvd wheel there, found {found}"
            path = found[0]
        assert path.is_file() and path.suffix == ".whl", f"TFSVD_TEST_WHEEL={setting} is not a wheel"
        return path

    out = tmp_path_factory.mktemp("wheel")
    start = time.monotonic()
    result = subprocess.run(
        ["bash", str(BUILD_WHEEL), str(out)], cwd=REPO_ROOT, env=_child_env(PYTHON=sys.executable),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200)
    assert result.returncode == 0, f"docker/build_wheel.sh failed:\n{_tail(result.stdout)}"
    found = glob.glob(str(out / "tfsvd-*.whl"))
    assert len(found) == 1, f"build_wheel.sh wrote {found}:\n{_tail(result.stdout)}"
    print(f"\nbuilt {found[0]} in {time.monotonic() - start:.0f} s")
    return pathlib.Path(found[0])


@pytest.fixture(scope="session")
def wheel_venv(wheel, tmp_path_factory):
    """Python of a new venv (no system site packages) where only the wheel was pip-installed."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--only-binary=:all:",
         str(wheel)],
        env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200)
    assert result.returncode == 0, f"pip install of the wheel into a fresh venv failed:\n{_tail(result.stdout)}"
    print(f"\ninstalled {wheel.name} and its dependencies into a fresh venv in "
          f"{time.monotonic() - start:.0f} s")
    return python
