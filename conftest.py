"""Test setup shared by the test suite (``tests/``) and the doctests of ``zoo/``."""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPUs, so MirroredStrategy runs with two replicas on this machine.
# This must happen before TensorFlow initialises its devices.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture(scope="session", autouse=True)
def zoo_cache_dir(tmp_path_factory):
    """One fresh ``ZOO_CACHE_DIR`` for the session: the default corpus and tokenizers are built once."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("zoo-cache")
        patch.setenv("ZOO_CACHE_DIR", str(path))
        yield path


@pytest.fixture(autouse=True)
def doctest_temporary_files(request, monkeypatch):
    """A doctest's ``tempfile.mkdtemp()`` makes its folder in the doctest's ``tmp_path``, which pytest prunes."""
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.setattr(tempfile, "tempdir", str(request.getfixturevalue("tmp_path")))
