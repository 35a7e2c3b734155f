"""What the benchmark ran on: the device, library versions, matmul peaks, peak memory.

Peak memory is TensorFlow's allocator peak on the device that trains
(``tf.config.experimental.reset_memory_stats`` / ``get_memory_info``): on
the first GPU, or on the CPU where TensorFlow runs its caching allocator
there (:mod:`zoo.allocator`, the default after ``import zoo``). That
allocator keeps the memory it has grown to, so the process's resident size
after one row says little about the next. With TensorFlow's default CPU
allocator it is the process's resident-set high-water mark instead:
writing ``5`` to ``/proc/self/clear_refs`` resets ``VmHWM`` to the
current resident size, so :class:`PeakMemory` reports the highest
resident size reached while a row ran (the process's baseline included).
Where neither is available the figure is ``None``.
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import platform

import tensorflow as tf

from zoo.allocator import caching_allocator_active
from zoo.measured_kernels import median_seconds

#: Distributions whose versions the results record.
DISTRIBUTIONS = ("zoo-selfsup", "tensorflow", "tensorflow-text", "keras", "keras-hub", "tokenizers")


def gpu_names() -> list:
    """Names of the visible GPUs (empty on a CPU-only machine).

    Example:
        >>> isinstance(gpu_names(), list)
        True
    """
    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return names


def device_kind() -> str:
    """``"gpu"`` where TensorFlow sees a GPU, ``"tpu"`` for a TPU, else ``"cpu"``: the results key.

    Example:
        >>> device_kind() in ("cpu", "gpu", "tpu")
        True
    """
    if tf.config.list_logical_devices("TPU"):
        return "tpu"
    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def describe_device() -> dict:
    """The machine: CPU model, cores, bfloat16 instructions, GPUs, TensorFlow's CPU allocator.

    Example:
        >>> sorted(describe_device())[:3]
        ['cpu_allocator', 'cpu_bfloat16', 'cpu_cores']
    """
    info = {}
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())  # the first processor's
    except OSError:
        pass
    model = info.get("model name") or platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    return {
        "cpu_model": model,
        "cpu_cores": os.cpu_count(),
        "cpu_bfloat16": sorted(flags & {"avx512_bf16", "amx_bf16"}),
        "gpus": gpu_names(),
        "kind": device_kind(),
        # On NVIDIA GPUs from Ampere on, float32 matmuls (the peak's and the models') run as TF32 when this is on.
        "tensor_float_32": tf.config.experimental.tensor_float_32_execution_enabled(),
        "platform": platform.platform(),
        "cpu_allocator": "caching (BFC)" if caching_allocator_active() else "TensorFlow's default",
    }


def versions() -> dict:
    """Versions of Python and of the distributions in :data:`DISTRIBUTIONS`.

    Example:
        >>> "tensorflow" in versions()
        True
    """
    found = {"python": platform.python_version()}
    for name in DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def matmul_kernels(**matmul_options) -> dict:
    """One product on each kernel a peak or ceiling is timed on: TensorFlow's matmul op and XLA's dot.

    The values are functions of the two operands, ``tf.linalg.matmul(x, y,
    **matmul_options)``; ``"xla"`` is compiled (``jit_compile``). Which is
    faster depends on the processor and the shape: on the Zen 3 machine of
    ``RESULTS.md`` XLA's square float32 product runs about 1.2 times as fast
    as TensorFlow's op; on the Intel machine of 2026-12-04, at the model's
    shapes, oneDNN's ran as fast as XLA's or faster.

    Example:
        >>> kernels = matmul_kernels(transpose_b=True)
        >>> sorted(kernels), kernels["xla"](tf.ones([2, 3]), tf.ones([4, 3])).shape
        (['matmul', 'xla'], TensorShape([2, 4]))
    """
    def product(x, y):
        return tf.linalg.matmul(x, y, **matmul_options)

    return {"matmul": product, "xla": tf.function(product, jit_compile=True, autograph=False)}


def matmul_peak(dtype: str, size: int, repeats: int = 5) -> dict:
    """Measured matmul throughput: ``size × size`` products on the faster of :func:`matmul_kernels`.

    Both kernels multiply the same two random square matrices (``2·size³``
    FLOPs), `repeats` timed calls each, alternating, after a warm-up call
    (``zoo.measured_kernels.median_seconds``). The peak is the faster
    kernel's median (``kernel``); ``kernel_flops_per_s`` gives both.

    Example:
        >>> peak = matmul_peak("float32", 64, repeats=2)
        >>> peak["flops_per_s"] == max(peak["kernel_flops_per_s"].values()) > 0
        True
    """
    a = tf.random.stateless_normal([size, size], seed=[1, 2], dtype=tf.float32)
    b = tf.random.stateless_normal([size, size], seed=[3, 4], dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    seconds = median_seconds(matmul_kernels(), a, b, calls=repeats)
    kernel = min(seconds, key=seconds.get)
    flops = 2.0 * size**3
    return {"dtype": dtype, "size": size, "kernel": kernel, "median_s": seconds[kernel],
            "flops_per_s": flops / seconds[kernel],
            "kernel_flops_per_s": {name: flops / time_s for name, time_s in seconds.items()}}


class PeakMemory:
    """Peak memory while a block runs, in megabytes: ``with PeakMemory() as peak: ...; peak.megabytes``.

    ``baseline_megabytes`` is the memory in use when the block started.

    Example:
        >>> with PeakMemory() as peak:
        ...     block = tf.ones([1000, 1000])  # 4 MB
        >>> peak.megabytes is None or peak.megabytes > 3.8
        True
    """

    def __init__(self):
        self.megabytes = None
        self.baseline_megabytes = None
        self.source = None

    def __enter__(self):
        self._device = "GPU:0" if tf.config.list_logical_devices("GPU") else None
        if self._device is None and caching_allocator_active():
            self._device = "CPU:0"
        if self._device:
            tf.config.experimental.reset_memory_stats(self._device)
            self.baseline_megabytes = tf.config.experimental.get_memory_info(self._device)["current"] / 2**20
            self.source = f"tf.config.experimental.get_memory_info({self._device})['peak']"
        elif _reset_high_water_mark():
            self.baseline_megabytes = _status_kilobytes("VmRSS") / 1024
            self.source = "VmHWM after /proc/self/clear_refs=5"
        return self

    def __exit__(self, *exc_info):
        if self._device:
            self.megabytes = tf.config.experimental.get_memory_info(self._device)["peak"] / 2**20
        elif self.source:
            self.megabytes = _status_kilobytes("VmHWM") / 1024
        return False


def _reset_high_water_mark() -> bool:
    try:
        pathlib.Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kilobytes("VmHWM") is not None


def _status_kilobytes(field: str):
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None
