"""zoo.sparse_accuracy: Keras's sparse categorical accuracy on one tf.argmax, as the objectives' accuracy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.sparse_accuracy import SparseAccuracy, sparse_top1_matches


@pytest.mark.parametrize("label_shape", ["flat", "trailing_one"])
def test_it_equals_keras_sparse_categorical_accuracy_with_sample_weights(label_shape):
    logits = tf.random.stateless_normal((4, 6, 30), seed=[1, 2])
    labels = tf.random.stateless_uniform((4, 6), seed=[3, 4], maxval=30, dtype=tf.int32)
    labels = tf.where(tf.random.stateless_uniform((4, 6), seed=[5, 6]) < 0.3, tf.argmax(logits, -1, tf.int32), labels)
    weights = tf.cast(tf.random.stateless_uniform((4, 6), seed=[7, 8]) > 0.4, tf.float32)
    if label_shape == "trailing_one":
        labels = labels[..., None]
    ours, theirs = SparseAccuracy(), keras.metrics.SparseCategoricalAccuracy()
    for metric in (ours, theirs):
        metric.update_state(labels, logits, sample_weight=weights)
        metric.update_state(tf.cast(labels, tf.float32)[::-1], logits[::-1])
    assert 0.1 < float(theirs.result()) < 0.9
    assert float(ours.result()) == pytest.approx(float(theirs.result()), abs=1e-7)


def test_ties_go_to_the_lowest_class_as_in_tf_argmax():
    logits = tf.constant([[0.0, 0.0, 0.0], [1.0, 5.0, 5.0], [-2.0, -1.0, -1.0]])
    np.testing.assert_array_equal(sparse_top1_matches([0, 2, 1], logits), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(sparse_top1_matches([1, 1, 2], logits), [0.0, 1.0, 0.0])


def test_the_graph_makes_one_pass_over_the_logits():
    traced = tf.function(sparse_top1_matches).get_concrete_function(
        tf.TensorSpec((8, 5), tf.int32), tf.TensorSpec((8, 5, 100), tf.float32))
    full_size = [op.type for op in traced.graph.get_operations()
                 if op.outputs and op.outputs[0].shape.rank == 3]
    assert full_size == ["Placeholder"]  # only the logits themselves; keras.ops.argmax adds five such ops


def test_it_serializes_and_is_what_objectives_report():
    restored = keras.metrics.deserialize(keras.metrics.serialize(SparseAccuracy(name="token_accuracy")))
    assert isinstance(restored, SparseAccuracy) and restored.name == "token_accuracy"
    keras.utils.set_random_seed(0)
    model = zoo.build("bert", objective="mlm", num_layers=1, hidden_dim=16, intermediate_dim=32, num_heads=2,
                      sequence_length=16)
    history = model.fit(["the cat sat on the mat and the dog sat on the log"] * 32, batch_size=8, epochs=2,
                        verbose=0)
    assert 0.0 <= history.history["mlm_accuracy"][-1] <= 1.0
    assert any(isinstance(metric, SparseAccuracy) for metric in _leaf_metrics(model))


def _leaf_metrics(model):
    stack, found = list(model.metrics), []
    while stack:
        metric = stack.pop()
        found.append(metric)
        stack.extend(getattr(metric, "metrics", []) or [])
        stack.extend(getattr(metric, "_flat_metrics", []) or [])
    return found
