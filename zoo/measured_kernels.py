"""Choosing between two kernels of the same arithmetic by timing both here, once per process and shape.

Which of TensorFlow's ops and an XLA-compiled function runs a product
faster on a CPU depends on the processor: on the Zen 3 machine of
``benchmarks/RESULTS.md`` XLA's matmuls beat oneDNN's at some shapes, on
the Intel machine of 2026-12-04 they were slower. zoo's training fast
paths that have two such kernels (:mod:`zoo.tied_projection`,
:mod:`zoo.compiled_attention`) therefore time both, on random operands
of the shape being traced, the first time a shape is met in a process,
and keep the candidate kernel only where it takes at most
:data:`CLEAR_MARGIN` of the baseline's time, so that timing noise does
not flip the choice between runs. Work under :data:`MEASURED_FLOPS`
(every test-sized model) keeps the baseline untimed.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Callable

import tensorflow as tf

#: The candidate kernel is chosen only when its median time is at most this fraction of the baseline's.
CLEAR_MARGIN = 0.85
#: Work of fewer floating-point operations keeps the baseline kernel untimed.
MEASURED_FLOPS = 1e9
#: The size an axis unknown while tracing (the batch) is timed at.
UNKNOWN_AXIS_SIZE = 32


class MeasuredChoice:
    """The faster of a `baseline` and a `candidate` kernel for each key, timed once per process.

    Example:
        >>> choice = MeasuredChoice("matmul", "xla")
        >>> choice.choose(("shape",), 2e9, lambda: {"matmul": 1.0, "xla": 0.5})
        'xla'
        >>> choice.choose(("shape",), 2e9, lambda: {"matmul": 1.0, "xla": 9.0})  # timed once: the first answer stays
        'xla'
        >>> choice.choose(("small",), 1e6, lambda: {"matmul": 1.0, "xla": 0.5})  # under MEASURED_FLOPS: not timed
        'matmul'
        >>> choice.measured()
        [(('shape',), {'kernel': 'xla', 'seconds': {'matmul': 1.0, 'xla': 0.5}})]
    """

    def __init__(self, baseline: str, candidate: str):
        self.baseline, self.candidate = baseline, candidate
        self._choices: dict = {}
        self._lock = threading.Lock()

    def choose(self, key: tuple, flops: float, time_kernels: Callable[[], dict]) -> str:
        """The kernel for `key`: timed by `time_kernels` (seconds by kernel name) the first time, if `flops` is large enough.

        `time_kernels` runs eagerly, even while a training step is being traced.
        """
        if flops < MEASURED_FLOPS:
            return self.baseline
        with self._lock:
            if key not in self._choices:
                with tf.init_scope():
                    seconds = time_kernels()
                faster = seconds[self.candidate] <= CLEAR_MARGIN * seconds[self.baseline]
                self._choices[key] = {"kernel": self.candidate if faster else self.baseline, "seconds": seconds}
            return self._choices[key]["kernel"]

    def measured(self) -> list:
        """Each key timed in this process, sorted, with its choice: ``(key, {"kernel", "seconds"})``."""
        return sorted(self._choices.items())


def timed_shape(shape) -> tuple:
    """The shape a kernel is timed at: `shape` with each axis unknown while tracing as :data:`UNKNOWN_AXIS_SIZE`.

    Example:
        >>> timed_shape((None, 128, 256))
        (32, 128, 256)
    """
    return tuple(UNKNOWN_AXIS_SIZE if size is None else int(size) for size in shape)


def median_seconds(kernels: dict, *operands, calls: int = 5) -> dict:
    """Median seconds of each of `kernels` (name: function) called on `operands`, `calls` times, interleaved.

    Each function runs as a ``tf.function`` without autograph, as it would in
    a traced training step (no eager dispatch per op), once untimed first;
    the timed calls alternate between the kernels, so that a drift of the
    machine's speed touches both alike.

    Example:
        >>> seconds = median_seconds({"matmul": tf.matmul}, tf.ones((8, 8)), tf.ones((8, 8)))
        >>> list(seconds), seconds["matmul"] > 0
        (['matmul'], True)
    """
    functions = {name: tf.function(kernel, autograph=False) for name, kernel in kernels.items()}
    timed = {name: [] for name in functions}
    for function in functions.values():
        _wait(function(*operands))
    for _ in range(calls):
        for name, function in functions.items():
            start = time.perf_counter()
            _wait(function(*operands))
            timed[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds) for name, seconds in timed.items()}


def _wait(results) -> None:
    """Block until `results` (tensors, in any nesting) are computed."""
    for tensor in tf.nest.flatten(results):
        tf.reshape(tensor, [-1])[:1].numpy()
