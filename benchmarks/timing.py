"""Timing of steady-state training and of input pipelines.

Training is timed on batches preprocessed beforehand (:func:`materialize`),
so the figures are those of the model and optimizer alone. ``fit`` runs
``1 + warmup_windows·W + windows·W`` steps over them, cycling; a callback
stamps the clock after the first step (tracing and compilation, reported
as ``first_step_s``) and after every ``W`` further steps, reading the loss
so that the device has finished. The first ``warmup_windows`` windows are
dropped and the figures are medians over the timed windows.
"""

from __future__ import annotations

import statistics
import time

import keras
import numpy as np
import tensorflow as tf


def materialize(dataset: tf.data.Dataset, num_batches: int) -> tuple:
    """The first `num_batches` batches of `dataset` as one in-memory dataset, and each batch's counts.

    Elements are ``(x, y, sample_weight)``; counts are ``tokens`` (the sum
    of ``x["padding_mask"]``), ``sequences`` and ``predictions`` (the sum of
    the sample weights, e.g. the positions a masked LM predicts).

    Example:
        >>> x = {"token_ids": np.ones((2, 4), "int32"), "padding_mask": np.array([[1, 1, 0, 0], [1, 1, 1, 1]])}
        >>> data = tf.data.Dataset.from_tensors((x, x["token_ids"], np.ones((2, 4), "float32")))
        >>> batches, counts = materialize(data.repeat(), 3)
        >>> counts[0]
        {'tokens': 6, 'sequences': 2, 'predictions': 8.0}
    """
    batches = [tf.nest.map_structure(np.asarray, element) for element in dataset.take(num_batches)]
    if len(batches) < num_batches:
        raise ValueError(f"the dataset holds {len(batches)} batches, fewer than the {num_batches} asked for")
    counts = []
    for x, _, sample_weight in batches:
        counts.append({
            "tokens": int(np.sum(x["padding_mask"].astype(np.int64))),
            "sequences": int(x["padding_mask"].shape[0]),
            "predictions": float(sum(np.sum(w) for w in tf.nest.flatten(sample_weight))),
        })
    stacked = tf.nest.map_structure(lambda *arrays: np.stack(arrays), *batches)
    return tf.data.Dataset.from_tensor_slices(stacked), counts


class WindowTimer(keras.callbacks.Callback):
    """Stamps the clock after the first training step and after every `window_steps` steps.

    ``first_step_s`` is the time from the start of ``fit`` to the end of
    step 1; ``windows`` the durations of the following windows.
    """

    def __init__(self, window_steps: int):
        super().__init__()
        self.window_steps = int(window_steps)
        self.first_step_s = None
        self.windows = []

    def on_train_begin(self, logs=None):
        self._steps = 0
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        if self._steps == 1 or (self._steps - 1) % self.window_steps == 0:
            _wait(logs)
            now = time.perf_counter()
            if self._steps == 1:
                self.first_step_s = now - self._start
            else:
                self.windows.append(now - self._mark)
            self._mark = now


def _wait(logs) -> None:
    """Block until the step that produced `logs` has finished, by reading one value of it."""
    if logs:
        np.asarray(next(iter(logs.values())))


def time_training(model, batches: tf.data.Dataset, counts: list, *, window_steps: int, windows: int,
                  warmup_windows: int = 1, flops=None) -> dict:
    """Train `model` over the cycled `batches` and time it (see the module docstring).

    `flops` maps a batch's counts to its training FLOPs. Returns the first
    step's time, the timed windows' durations and the medians of steps/s,
    sequences/s, useful (non-padding) tokens/s and FLOPs/s over them.
    """
    timer = WindowTimer(window_steps)
    total_steps = 1 + (warmup_windows + windows) * window_steps
    history = model.fit(batches.repeat(), steps_per_epoch=total_steps, epochs=1, verbose=0, callbacks=[timer])
    per_window = {"tokens": [], "sequences": [], "flops": []}
    for index in range(warmup_windows, warmup_windows + windows):
        first = 1 + index * window_steps  # 0-based step index of the window's first step
        window_counts = [counts[step % len(counts)] for step in range(first, first + window_steps)]
        per_window["tokens"].append(sum(c["tokens"] for c in window_counts))
        per_window["sequences"].append(sum(c["sequences"] for c in window_counts))
        per_window["flops"].append(sum(flops(c) for c in window_counts) if flops else 0.0)
    timed = timer.windows[warmup_windows:]
    result = {
        "first_step_s": timer.first_step_s,
        "warmup_window_s": timer.windows[:warmup_windows],
        "window_s": timed,
        "window_steps": window_steps,
        "steps_per_s": statistics.median(window_steps / seconds for seconds in timed),
        "sequences_per_s": statistics.median(n / s for n, s in zip(per_window["sequences"], timed)),
        "useful_tokens_per_s": statistics.median(n / s for n, s in zip(per_window["tokens"], timed)),
        "useful_token_fraction": sum(per_window["tokens"]) / max(1, _positions(batches) * windows * window_steps),
        "final_loss": float(history.history["loss"][-1]),
    }
    if flops:
        result["flops_per_s"] = statistics.median(n / s for n, s in zip(per_window["flops"], timed))
    return result


def _positions(batches: tf.data.Dataset) -> int:
    """Token positions (batch × sequence length) of one batch."""
    x = batches.element_spec[0]
    return int(x["padding_mask"].shape[0] * x["padding_mask"].shape[1])


def time_pipeline(dataset: tf.data.Dataset, *, warmup_batches: int, batches: int) -> dict:
    """Sequences/s that `dataset` (an endless input pipeline of batches) produces on its own.

    The first `warmup_batches` batches (shuffle buffers filling, tracing) are
    not timed.

    Example:
        >>> data = tf.data.Dataset.from_tensors(({"padding_mask": np.ones((4, 8))}, 0, 0)).repeat()
        >>> time_pipeline(data, warmup_batches=1, batches=2)["sequences_per_s"] > 0
        True
    """
    iterator = iter(dataset)
    start = time.perf_counter()
    for _ in range(warmup_batches):
        next(iterator)
    warmup_s = time.perf_counter() - start
    sequences = 0
    start = time.perf_counter()
    for _ in range(batches):
        x = next(iterator)[0]
        sequences += int(x["padding_mask"].shape[0])
    seconds = time.perf_counter() - start
    return {"sequences_per_s": sequences / seconds, "warmup_s": warmup_s, "batches": batches}
