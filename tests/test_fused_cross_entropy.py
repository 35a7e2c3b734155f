"""zoo.fused_cross_entropy: Keras's sparse softmax cross-entropy, value and gradient, on two compiled passes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.fused_cross_entropy import SparseCrossEntropy, sparse_softmax_cross_entropy


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_loss_and_gradient_match_tensorflows_kernel(dtype):
    logits = tf.cast(tf.random.stateless_normal((3, 5, 50), seed=[1, 2]) * 4, dtype)
    labels = tf.random.stateless_uniform((3, 5), seed=[3, 4], maxval=50, dtype=tf.int32)
    weights = tf.random.stateless_uniform((3, 5), seed=[5, 6])
    results = []
    for function in (sparse_softmax_cross_entropy,
                     lambda y, x: tf.nn.sparse_softmax_cross_entropy_with_logits(y, tf.cast(x, tf.float32))):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = function(labels, logits)
            total = tf.reduce_sum(loss * weights)
        results.append((loss, tape.gradient(total, logits)))
    (loss, gradient), (expected, expected_gradient) = results
    assert loss.shape == (3, 5) and loss.dtype == tf.float32 and gradient.dtype == dtype
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-5)
    tolerance = 1e-6 if dtype == "float32" else 1e-2
    np.testing.assert_allclose(tf.cast(gradient, tf.float32), tf.cast(expected_gradient, tf.float32), atol=tolerance)
    np.testing.assert_allclose(tf.reduce_sum(tf.cast(gradient, tf.float32), -1), 0.0, atol=tolerance * 50)


def test_extreme_logits_stay_finite():
    logits = tf.constant([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = sparse_softmax_cross_entropy([1, 2], logits)
        total = tf.reduce_sum(loss)
    gradient = tape.gradient(total, logits)
    np.testing.assert_allclose(loss, [2e4, np.log(3.0)], rtol=1e-6)
    np.testing.assert_allclose(gradient, [[1.0, -1.0, 0.0], [1 / 3, 1 / 3, -2 / 3]], atol=1e-4)


def test_the_keras_loss_equals_sparse_categorical_crossentropy_with_sample_weights():
    logits = tf.random.stateless_normal((4, 6, 30), seed=[7, 8])
    labels = tf.random.stateless_uniform((4, 6), seed=[9, 10], maxval=30, dtype=tf.int32)
    weights = tf.cast(tf.random.stateless_uniform((4, 6), seed=[11, 12]) > 0.5, tf.float32)
    ours = SparseCrossEntropy(reduction="mean_with_sample_weight", name="mlm_loss")
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
    np.testing.assert_allclose(ours(labels, logits, weights), keras_loss(labels, logits, weights), rtol=1e-6)
    np.testing.assert_allclose(ours(labels[..., None], logits), keras_loss(labels[..., None], logits), rtol=1e-6)
    restored = keras.losses.deserialize(keras.losses.serialize(ours))
    assert isinstance(restored, SparseCrossEntropy) and restored.name == "mlm_loss"
    assert restored.reduction == "mean_with_sample_weight"


def test_objectives_train_on_it_by_default():
    keras.utils.set_random_seed(0)
    model = zoo.build("gpt", objective="clm", num_layers=1, hidden_dim=16, intermediate_dim=32, num_heads=2,
                      sequence_length=16)
    assert isinstance(model.loss["clm"], SparseCrossEntropy)
    history = model.fit(["the cat sat on the mat and the dog sat on the log"] * 64, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
