"""``tf.distribute`` strategies by name.

- ``auto``: a TPU if one is attached (``TPU_NAME`` set or ``/dev/accel*``
  present) and resolves, else ``mirrored`` over several GPUs, else ``default``.
- ``default``: TensorFlow's default strategy (one device, no replication).
- ``one_device``: the first GPU, else the CPU.
- ``mirrored``: synchronous data parallelism over the local GPUs, or over
  the logical CPUs when there is no GPU (:func:`mirrored_strategy`).
- ``multi_worker``: ``MultiWorkerMirroredStrategy`` over the cluster in
  ``TF_CONFIG``; every worker runs the same command.
- ``tpu``: ``TPUStrategy`` on the TPU cluster that resolves.

Create the strategy before any other TensorFlow work in the process
(``multi_worker`` requires it). Keras splits each global batch across the
replicas (``experimental_distribute_dataset``) when a model built under the
strategy's scope is fitted on a ``tf.data.Dataset``.
"""

from __future__ import annotations

import glob
import itertools
import json
import os

import tensorflow as tf

from zoo.errors import ConfigError, unknown_name

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")

#: Collective group keys each :func:`mirrored_strategy` reserves (TensorFlow takes one per device group).
COLLECTIVE_KEYS_PER_STRATEGY = 10_000


def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The strategy called `name` (see the module docstring).

    Example:
        >>> get_strategy("default").num_replicas_in_sync
        1
    """
    if name not in STRATEGIES:
        raise unknown_name("strategy", name, STRATEGIES)
    if name == "auto":
        if _tpu_attached():
            return _tpu_strategy()
        if len(tf.config.list_logical_devices("GPU")) > 1:
            return mirrored_strategy()
        return tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return mirrored_strategy()
    if name == "multi_worker":
        _check_tf_config()
        return _MultiWorkerMirrored()
    return _tpu_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: always, except on non-chief workers of a cluster.

    Example:
        >>> is_chief(get_strategy("default"))
        True
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_label(strategy: tf.distribute.Strategy) -> str:
    """``"TYPE-ID"`` of this process in a cluster, ``"local"`` outside one.

    Example:
        >>> worker_label(get_strategy("default"))
        'local'
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "local"
    return f"{resolver.task_type}-{resolver.task_id}"


def mirrored_strategy(devices=None) -> tf.distribute.MirroredStrategy:
    """``MirroredStrategy`` over `devices` (default: the local GPUs, or the logical CPUs without one).

    TensorFlow numbers the collective ops of every ``MirroredStrategy`` in
    a process from the same keys, so a second strategy's first all-reduce
    meets the first strategy's and fails on their shapes
    (tensorflow/tensorflow#62790). Each strategy made here takes keys of
    its own, so any number of them, one after another, train in one
    process.

    Example:
        >>> mirrored_strategy(["/cpu:0"]).num_replicas_in_sync
        1
    """
    if devices is None:
        devices = [device.name for device in tf.config.list_logical_devices("GPU")]
        devices = devices or [device.name for device in tf.config.list_logical_devices("CPU")]
    return _KeyedMirroredStrategy(list(devices))


class _KeyedMirroredStrategy(tf.distribute.MirroredStrategy):
    """``MirroredStrategy`` whose collective keys no other strategy of this process uses."""

    _key_bases = itertools.count(1)

    def __init__(self, devices):
        # TensorFlow's MirroredExtended starts the strategy's collective keys here (a class
        # attribute of 0 otherwise; its own tests set it the same way).
        self._collective_key_base = next(self._key_bases) * COLLECTIVE_KEYS_PER_STRATEGY
        super().__init__(devices)


class _MultiWorkerMirrored(tf.distribute.MultiWorkerMirroredStrategy):
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras's ``fit`` gives it.

    Keras reduces the first distributed batch (a dict of inputs) to build
    the model before training, and each step's logs with ``axis=0`` though
    they are per-replica scalars; the stock strategy reduces one value only
    and no axis of a scalar (keras-team/keras#20329). Here nests are reduced
    leaf by leaf, as ``MirroredStrategy`` does, and a scalar across the
    replicas alone, which is what Keras's single-worker path computes.
    """

    def reduce(self, reduce_op, value, axis):
        def reduce_leaf(leaf):
            local = leaf.values[0] if isinstance(leaf, tf.distribute.DistributedValues) else leaf
            rank = getattr(local, "shape", tf.TensorShape(None)).rank
            return super(_MultiWorkerMirrored, self).reduce(reduce_op, leaf, None if rank == 0 else axis)

        return tf.nest.map_structure(reduce_leaf, value)


def _check_tf_config() -> None:
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        raise ConfigError(
            "multi_worker needs TF_CONFIG (the cluster and this worker's task); set it on every worker, "
            'e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        if not isinstance(workers, list) or task["type"] not in ("chief", "worker") or task["index"] < 0:
            raise ValueError("cluster.worker must be a list and task a chief or worker with an index")
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"TF_CONFIG is malformed ({error}); see the multi_worker example in zoo.distribute") from None


def _tpu_attached() -> bool:
    return bool(os.environ.get("TPU_NAME") or glob.glob("/dev/accel*") or os.environ.get("COLAB_TPU_ADDR"))


def _tpu_strategy() -> tf.distribute.Strategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise ConfigError(f"no TPU resolves here ({error}); use strategy 'auto' or 'mirrored'") from None
    return tf.distribute.TPUStrategy(resolver)
