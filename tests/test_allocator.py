"""zoo.allocator: the caching CPU allocator is the default after `import zoo`, and the user can keep TensorFlow's."""

import os
import subprocess
import sys

from zoo.allocator import CACHING_ALLOCATOR_LIMIT_MB, USE_CACHING_ALLOCATOR, prefer_caching_allocator

_REPORT = """
import zoo
import tensorflow as tf
from zoo.allocator import caching_allocator_active
total = tf.reduce_sum(tf.ones([1 << 20]) + 1.0)
print(caching_allocator_active(), float(total))
"""


def _allocator_after_import_zoo(**environment) -> list:
    env = {key: value for key, value in os.environ.items()
           if key not in (USE_CACHING_ALLOCATOR, CACHING_ALLOCATOR_LIMIT_MB)}
    env.update(environment, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", _REPORT], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_import_zoo_gives_tensorflow_the_caching_allocator():
    assert _allocator_after_import_zoo() == ["True", str(float(2 << 20))]


def test_a_user_who_chose_the_default_allocator_keeps_it():
    assert _allocator_after_import_zoo(**{USE_CACHING_ALLOCATOR: "false"}) == ["False", str(float(2 << 20))]


def test_defaults_are_set_only_where_the_user_set_nothing():
    environ = {}
    assert prefer_caching_allocator(environ)
    physical_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    assert environ == {USE_CACHING_ALLOCATOR: "true", CACHING_ALLOCATOR_LIMIT_MB: str(physical_mb)}

    chosen = {USE_CACHING_ALLOCATOR: "0", CACHING_ALLOCATOR_LIMIT_MB: "512"}
    assert not prefer_caching_allocator(chosen)
    assert chosen == {USE_CACHING_ALLOCATOR: "0", CACHING_ALLOCATOR_LIMIT_MB: "512"}
    assert prefer_caching_allocator({USE_CACHING_ALLOCATOR: "TRUE"})
