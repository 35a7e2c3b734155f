"""Numeric precision: ``auto`` picks mixed bfloat16 where the hardware runs it faster.

Names are Keras dtype policies plus ``auto``:

- ``float32``: everything in float32.
- ``mixed_bfloat16``: float32 variables, bfloat16 computation. Fast on TPUs,
  NVIDIA GPUs of compute capability 8.0 and later, and CPUs with
  AVX512-BF16 or AMX instructions.
- ``mixed_float16``: float32 variables, float16 computation with loss
  scaling; for older NVIDIA GPUs (compute capability 7.x).
- ``auto``: ``mixed_bfloat16`` on the hardware above, ``float32`` elsewhere.

Layers take their policy when they are built, so :func:`precision_scope`
sets Keras's global policy only while a model is being built and restores
the previous one afterwards.
"""

from __future__ import annotations

import contextlib
import pathlib
from typing import Iterator

import keras
import tensorflow as tf

from zoo.errors import unknown_name

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
_CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def resolve_precision(name: str = "auto") -> str:
    """The Keras dtype policy name for a precision name (``auto`` is resolved here).

    Example:
        >>> resolve_precision("float32")
        'float32'
        >>> resolve_precision("auto") in ("float32", "mixed_bfloat16")
        True
    """
    if name not in PRECISIONS:
        raise unknown_name("precision", name, PRECISIONS)
    if name != "auto":
        return name
    return "mixed_bfloat16" if _fast_bfloat16() else "float32"


@contextlib.contextmanager
def precision_scope(name: str = "auto") -> Iterator[str]:
    """Build layers under the policy of `name`; yield the resolved policy name.

    Example:
        >>> with precision_scope("mixed_bfloat16"):
        ...     keras.layers.Dense(2).dtype_policy.name
        'mixed_bfloat16'
        >>> keras.config.dtype_policy().name
        'float32'
    """
    policy = resolve_precision(name)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield policy
    finally:
        keras.config.set_dtype_policy(previous)


def has_accelerator() -> bool:
    """Whether this process sees a GPU or a TPU (where zoo compiles the training step with XLA).

    Example:
        >>> has_accelerator() in (True, False)
        True
    """
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def _fast_bfloat16() -> bool:
    if tf.config.list_logical_devices("TPU"):
        return True
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
                        for gpu in gpus]
        return all(capability >= (8, 0) for capability in capabilities)
    return bool(_cpu_flags() & _CPU_BF16_FLAGS)


def _cpu_flags() -> frozenset:
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: assume no bfloat16 arithmetic
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()
