"""zoo.measured_kernels: the faster of two kernels, timed once per process and key, eagerly, interleaved."""

import threading
import time

import tensorflow as tf

from zoo import measured_kernels
from zoo.measured_kernels import CLEAR_MARGIN, MeasuredChoice, median_seconds


def test_the_candidate_needs_the_clear_margin():
    choice = MeasuredChoice("ops", "xla")
    assert choice.choose(("at",), 2e9, lambda: {"ops": 1.0, "xla": CLEAR_MARGIN}) == "xla"
    assert choice.choose(("above",), 2e9, lambda: {"ops": 1.0, "xla": CLEAR_MARGIN + 0.01}) == "ops"
    assert [key for key, _ in choice.measured()] == [("above",), ("at",)]


def test_small_work_keeps_the_baseline_untimed(monkeypatch):
    choice = MeasuredChoice("ops", "xla")
    timings = lambda: {"ops": 1.0, "xla": 0.1}  # noqa: E731
    assert choice.choose(("small",), measured_kernels.MEASURED_FLOPS / 2, timings) == "ops"
    assert choice.measured() == []
    monkeypatch.setattr(measured_kernels, "MEASURED_FLOPS", 0.0)
    assert choice.choose(("small",), 1.0, timings) == "xla"


def test_each_key_is_timed_once_even_when_threads_ask_together():
    choice, timed = MeasuredChoice("ops", "xla"), []

    def timings():
        timed.append(1)
        time.sleep(0.05)  # long enough for the other threads to arrive while it is being timed
        return {"ops": 1.0, "xla": 0.5}

    answers = []
    threads = [threading.Thread(target=lambda: answers.append(choice.choose(("k",), 2e9, timings))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert timed == [1] and answers == ["xla"] * 6


def test_timing_runs_eagerly_even_while_a_step_is_traced():
    choice, eager = MeasuredChoice("ops", "xla"), []

    def timings():
        eager.append(tf.executing_eagerly())
        return {"ops": 1.0, "xla": 2.0}

    @tf.function
    def step(x):
        return x * (2.0 if choice.choose(("traced",), 2e9, timings) == "ops" else 3.0)

    assert float(step(tf.constant(1.0))) == 2.0 and eager == [True]


def test_median_seconds_interleaves_the_kernels_after_one_untimed_call_each():
    order = []

    def kernel(name: str, seconds: float):
        def run(x):
            def sleep(x):
                order.append(name)
                time.sleep(seconds)
                return x

            return tf.py_function(sleep, [x], tf.float32)

        return run

    seconds = median_seconds({"slow": kernel("slow", 0.02), "fast": kernel("fast", 0.0)}, tf.ones(3), calls=4)
    assert order == ["slow", "fast"] * 5
    assert seconds["slow"] >= 0.02 > seconds["fast"]
