"""tests/core drive the framework-free kernels through the pybind11 module tfsvd._core without
importing TensorFlow (the package's __init__ imports it; the GPU machines have none): the
extension is loaded straight from the installed package directory."""

import pytest

from core_module import load_core


@pytest.fixture(scope="session")
def core():
    return load_core()
