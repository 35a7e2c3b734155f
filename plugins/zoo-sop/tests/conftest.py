"""The plugin's tests: MirroredStrategy on two logical CPUs, as zoo.testing.run_task_test needs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import zoo.testing  # noqa: E402

zoo.testing.use_two_logical_cpus()  # before anything runs TensorFlow
