"""Top-1 accuracy of integer labels against logits, with one ``tf.argmax`` over the logits.

Keras's ``SparseCategoricalAccuracy`` takes the argmax of the predictions
with ``keras.ops.argmax``. On TensorFlow that first rewrites every negative
zero in its input as the smallest negative float (a guard against
flush-to-zero on accelerators), five elementwise ops over the whole
``[positions, vocabulary_size]`` logits before the argmax itself. For the
``small`` GPT causal LM (4,096 × 8,192 float32 logits a step) that metric
took 66 ms against 19 ms for ``tf.argmax`` alone, on the 2-core machine of
``benchmarks/RESULTS.md``; in a one-process A/B the GPT float32 step trains
8% faster on :class:`SparseAccuracy`.

:class:`SparseAccuracy` is the same weighted mean of :func:`sparse_top1_matches`;
zoo's objectives report it as ``accuracy``. The two differ only where the
largest logit of a position is a zero of both signs: here ``-0.0`` and
``0.0`` tie, and as with every tie the lowest class wins.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def sparse_top1_matches(y_true, y_pred):
    """1.0 where the largest of `y_pred` ``[..., classes]`` is at class `y_true`, else 0.0.

    `y_true` holds class indices ``[...]`` (or ``[..., 1]``), of any
    numeric dtype; ties go to the lowest class. Returns ``[...]`` in
    Keras's float dtype.

    Example:
        >>> logits = tf.constant([[0.1, 2.0, -1.0], [3.0, 0.0, 3.0]])
        >>> sparse_top1_matches([[1], [2]], logits).numpy().tolist()
        [1.0, 0.0]
    """
    y_pred = tf.convert_to_tensor(y_pred)
    y_true = tf.convert_to_tensor(y_true)
    if y_true.shape.rank == y_pred.shape.rank and y_true.shape[-1] == 1:
        y_true = tf.squeeze(y_true, axis=-1)
    predicted = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
    return tf.cast(tf.equal(predicted, tf.cast(y_true, tf.int32)), keras.backend.floatx())


@keras.saving.register_keras_serializable(package="zoo")
class SparseAccuracy(keras.metrics.MeanMetricWrapper):
    """``keras.metrics.SparseCategoricalAccuracy`` computed by :func:`sparse_top1_matches`.

    Example:
        >>> accuracy = SparseAccuracy()
        >>> accuracy.update_state([1, 0], [[0.0, 1.0], [0.0, 1.0]], sample_weight=[3.0, 1.0])
        >>> float(accuracy.result())
        0.75
    """

    def __init__(self, name: str = "accuracy", dtype=None):
        super().__init__(fn=sparse_top1_matches, name=name, dtype=dtype)
        self._direction = "up"

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}
