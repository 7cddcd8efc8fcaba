"""An op library only loads into the TensorFlow minor it was built against: importing tfsvd under
another minor must fail with a message that names both versions.

The end-to-end tests copy the installed package into a temporary directory (merging the two
directories of an editable install: compiled files and _build_config.py in site-packages/tfsvd,
Python sources in the source tree), rewrite the copy's _build_config.py to claim another
TensorFlow minor, and import the copy in a fresh interpreter.
"""

import importlib.util
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from tfsvd import _build_config
from tfsvd._loader import TensorFlowVersionMismatch, check_tensorflow_version

RUNNING = tf.__version__
MAJOR, MINOR = (int(x) for x in RUNNING.split(".")[:2])


# --- check_tensorflow_version ----------------------------------------------------------------------

@pytest.mark.parametrize("running, built", [
    ("2.21.0", "2.21.0"),
    ("2.21.3", "2.21.0"),
    ("2.21.0", "2.21.1"),
    ("2.21.0rc1", "2.21.0"),
])
def test_same_minor_is_accepted(running, built):
    check_tensorflow_version(running=running, built=built)


@pytest.mark.parametrize("running, built", [
    ("2.20.0", "2.21.0"),
    ("2.22.0", "2.21.0"),
    ("2.22.0rc0", "2.21.0"),
    ("3.21.0", "2.21.0"),
    ("2.2.1", "2.21.0"),   # a prefix of the minor is not the minor
])
def test_other_minor_is_rejected_naming_both(running, built):
    with pytest.raises(TensorFlowVersionMismatch) as info:
        check_tensorflow_version(running=running, built=built)
    message = str(info.value)
    assert f"TensorFlow {built}" in message and f"TensorFlow {running}" in message
    major, minor = (int(x) for x in built.split(".")[:2])
    assert f"tensorflow>={major}.{minor},<{major}.{minor + 1}" in message
    assert isinstance(info.value, ImportError)  # so `import tfsvd` fails with an ImportError


def test_defaults_are_the_running_and_recorded_versions():
    assert _build_config.TENSORFLOW_VERSION.split(".")[:2] == RUNNING.split(".")[:2]
    assert tuple(_build_config.TENSORFLOW_MAJOR_MINOR) == (MAJOR, MINOR)
    check_tensorflow_version()
    with pytest.raises(TensorFlowVersionMismatch, match=re.escape(RUNNING)):
        check_tensorflow_version(built=f"{MAJOR}.{MINOR + 1}.0")


# --- import of a copy of the installed package that claims another TensorFlow minor -------------

_IMPORT_COPY = textwrap.dedent("""
    import sys
    # An editable install puts a finder in front of sys.meta_path that imports tfsvd from the source
    # tree whatever sys.path says: drop it so that the copy on PYTHONPATH is what gets imported.
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
    try:
        import tfsvd
    except ImportError as error:
        print("IMPORT FAILED:", type(error).__name__, "|", error)
        sys.exit(3)
    print("IMPORTED", tfsvd.__file__, tfsvd._build_config.__file__, tfsvd.build_info()["tensorflow"])
""")


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    """A copy of the installed tfsvd package: returns (directory for PYTHONPATH, package dir)."""
    spec = importlib.util.find_spec("tfsvd")
    locations = [pathlib.Path(p) for p in spec.submodule_search_locations]
    root = tmp_path_factory.mktemp("tfsvd_copy")
    package = root / "tfsvd"
    package.mkdir()
    for location in locations:  # in import order: the first directory that has a file wins
        for source in location.iterdir():
            if source.is_file() and not (package / source.name).exists():
                shutil.copy2(source, package / source.name)
    for needed in ("__init__.py", "_loader.py", "_build_config.py", "_tfsvd_ops.so"):
        assert (package / needed).is_file(), f"{needed} not found in {locations}"
    return root, package


def _import_copy(root, child_env):
    return subprocess.run([sys.executable, "-c", _IMPORT_COPY], cwd=root,
                          env=child_env(PYTHONPATH=str(root)), capture_output=True, text=True,
                          timeout=300)


def test_unmodified_copy_imports_from_the_copy(package_copy, child_env):
    # The control for the test below: the copy itself is importable, and it is the copy that loads.
    root, package = package_copy
    result = _import_copy(root, child_env)
    assert result.returncode == 0, result.stdout + result.stderr
    imported = result.stdout.split("IMPORTED", 1)[1].split()
    assert imported[0] == str(package / "__init__.py")
    assert imported[1] == str(package / "_build_config.py")


@pytest.mark.parametrize("claimed_minor", [MINOR - 1, MINOR + 1], ids=["older", "newer"])
def test_import_fails_on_tensorflow_minor_mismatch(package_copy, tmp_path, claimed_minor, child_env):
    root, package = package_copy
    mismatched = tmp_path / "tfsvd"
    shutil.copytree(package, mismatched)
    claimed = f"{MAJOR}.{claimed_minor}.0"
    config = (mismatched / "_build_config.py").read_text()
    config, n_version = re.subn(r'(?m)^TENSORFLOW_VERSION = ".*"$', f'TENSORFLOW_VERSION = "{claimed}"', config)
    config, n_minor = re.subn(r"(?m)^TENSORFLOW_MAJOR_MINOR = .*$",
                              f"TENSORFLOW_MAJOR_MINOR = ({MAJOR}, {claimed_minor})", config)
    assert n_version == 1 and n_minor == 1, config
    (mismatched / "_build_config.py").write_text(config)

    result = _import_copy(tmp_path, child_env)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    line = next(line for line in result.stdout.splitlines() if line.startswith("IMPORT FAILED:"))
    assert "TensorFlowVersionMismatch" in line
    assert f"TensorFlow {claimed}" in line and f"TensorFlow {RUNNING}" in line
    assert f"{MAJOR}.{claimed_minor}" in line and f"{MAJOR}.{MINOR}" in line
