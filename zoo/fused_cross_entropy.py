"""Softmax cross-entropy from logits over a vocabulary, forward and backward each as one XLA-compiled pass.

A language-model loss is a softmax over the vocabulary at every predicted
position: ``[positions, vocabulary_size]`` logits (608 × 8,192 for the
``small`` BERT masked LM at batch 32, 4,096 × 8,192 for GPT). TensorFlow's
``SparseSoftmaxCrossEntropyWithLogits`` kernel, which Keras's
``SparseCategoricalCrossentropy`` runs, computes the loss and its gradient
in one Eigen pass that is slow on CPU: 10 ms for BERT's logits and 62 ms
for GPT's on the 2-core machine of ``benchmarks/RESULTS.md``. It sits
between the forward and the backward pass of the step, where nothing else
can run beside it. :func:`sparse_softmax_cross_entropy` computes the same
loss as one compiled reduction (log-sum-exp and the label's logit) and its
gradient (softmax minus one-hot, times the incoming gradient) as another,
both in float32: 3.5 ms and 18 ms for the same logits.

:class:`SparseCrossEntropy` is Keras's ``SparseCategoricalCrossentropy``
with ``from_logits=True`` on this path; zoo's objectives use it as their
default loss.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@tf.function(jit_compile=True, autograph=False)
def _forward(logits, labels):
    """Per-row loss and log-sum-exp of float32 `logits` ``[rows, classes]``."""
    peak = tf.reduce_max(logits, axis=-1, keepdims=True)
    shifted = logits - peak
    log_sum = tf.math.log(tf.reduce_sum(tf.exp(shifted), axis=-1))
    label_logit = tf.gather(shifted, labels, batch_dims=1)
    return log_sum - label_logit, log_sum + peak[:, 0]


@tf.function(jit_compile=True, autograph=False)
def _backward(logits, labels, log_sum_exp, d_loss):
    """``(softmax(logits) - one_hot(labels)) * d_loss``, row by row."""
    probabilities = tf.exp(logits - log_sum_exp[:, None])
    one_hot = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
    return (probabilities - one_hot) * d_loss[:, None]


def sparse_softmax_cross_entropy(labels, logits):
    """``-log softmax(logits)[labels]`` at every position, with its gradient, in two compiled passes.

    `labels` are class indices ``[...]`` (or ``[..., 1]``); `logits` are
    ``[..., classes]`` of any float dtype. The loss is float32 ``[...]``;
    the gradient flows to `logits` in their own dtype. Labels outside
    ``[0, classes)`` give an undefined loss, as in TensorFlow's kernel on
    CPU.

    Example:
        >>> logits = tf.random.normal((2, 3, 10))
        >>> labels = tf.constant([[1, 2, 3], [4, 5, 6]])
        >>> expected = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        >>> bool(tf.reduce_max(tf.abs(sparse_softmax_cross_entropy(labels, logits) - expected)) < 1e-5)
        True
    """
    logits = tf.convert_to_tensor(logits)
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == logits.shape.rank:
        labels = tf.squeeze(labels, axis=-1)
    positions = tf.shape(labels)
    rows = tf.reshape(tf.cast(labels, tf.int32), [-1])
    flat = tf.reshape(logits, [-1, tf.shape(logits)[-1]])

    @tf.custom_gradient
    def loss_of(flat):
        as_float = tf.cast(flat, tf.float32)
        loss, log_sum_exp = _forward(as_float, rows)

        def gradient(d_loss):
            return tf.cast(_backward(as_float, rows, log_sum_exp, tf.cast(d_loss, tf.float32)), flat.dtype)

        return loss, gradient

    return tf.reshape(loss_of(flat), positions)


@keras.saving.register_keras_serializable(package="zoo")
class SparseCrossEntropy(keras.losses.Loss):
    """``keras.losses.SparseCategoricalCrossentropy(from_logits=True)`` computed by :func:`sparse_softmax_cross_entropy`.

    Example:
        >>> loss = SparseCrossEntropy(reduction="mean_with_sample_weight")
        >>> logits = tf.constant([[[2.0, 0.0], [0.0, 2.0]]])
        >>> round(float(loss([[0, 0]], logits, sample_weight=[[1.0, 0.0]])), 4)
        0.1269
    """

    def call(self, y_true, y_pred):
        return sparse_softmax_cross_entropy(y_true, y_pred)
