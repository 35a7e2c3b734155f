"""zoo.projections: flattened attention projections compute what Keras's einsum computes, faster, on zoo's models only."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.projections import column_sums, flat_einsum, flatten_projections, projection

BERT = dict(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=12,
            dropout=0.0)


@pytest.mark.parametrize("equation,input_shape,kernel_shape", [
    ("abc,cd->abd", (3, 5, 4), (4, 6)),
    ("abc,cde->abde", (3, 5, 4), (4, 2, 3)),
    ("abcd,cde->abe", (3, 5, 2, 3), (2, 3, 4)),
])
def test_flat_einsum_equals_einsum_and_its_gradients(equation, input_shape, kernel_shape):
    x = tf.random.stateless_normal(input_shape, seed=[1, 2])
    kernel = tf.random.stateless_normal(kernel_shape, seed=[3, 4])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, kernel])
        expected = keras.ops.einsum(equation, x, kernel)
        actual = flat_einsum(equation, x, kernel)
        expected_sum, actual_sum = tf.reduce_sum(expected * expected), tf.reduce_sum(actual * actual)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    for wrt in (x, kernel):
        np.testing.assert_allclose(tape.gradient(actual_sum, wrt), tape.gradient(expected_sum, wrt), rtol=1e-4,
                                   atol=1e-4)


def test_flat_einsum_rejects_other_equations():
    with pytest.raises(ValueError, match="abcd,abde"):
        flat_einsum("abcd,abde->abce", tf.zeros([1, 1, 1, 1]), tf.zeros([1, 1, 1, 1]))


@pytest.mark.parametrize("rows,columns", [(4, 3), (3, 5)], ids=["kernel-taller", "kernel-wider"])
@pytest.mark.parametrize("biased", [True, False], ids=["bias", "no-bias"])
def test_projection_and_its_gradients_equal_tensorflow_autodiff(rows, columns, biased, assert_function_matches):
    inputs = [tf.random.stateless_normal((6, rows), seed=[1, 2]), tf.random.stateless_normal((rows, columns), seed=[3, 4])]
    if biased:
        inputs.append(tf.random.stateless_normal((columns,), seed=[5, 6]))
    assert_function_matches(projection, lambda x, kernel, *bias: tf.matmul(x, kernel) + sum(bias), inputs, 1e-5)


def test_column_sums_of_a_large_mixed_precision_matrix():
    matrix = tf.cast(tf.random.stateless_uniform((4096, 8), seed=[1, 2]), tf.bfloat16)
    sums = column_sums(matrix)
    assert sums.dtype == tf.bfloat16 and sums.shape == (8,)
    np.testing.assert_allclose(tf.cast(sums, tf.float32), tf.reduce_sum(tf.cast(matrix, tf.float32), 0), rtol=1e-2)


def test_dense_layers_train_through_projection_and_infer_through_keras(monkeypatch):
    inputs = tf.random.stateless_normal((2, 5, 8), seed=[1, 2])
    layers = []
    for patched in (False, True):
        keras.utils.set_random_seed(0)
        layer = keras.layers.Dense(3, activation="tanh")
        layer.build(inputs.shape)
        if patched:
            assert flatten_projections(layer) == 1
        layers.append(layer)
    calls = []
    monkeypatch.setattr(zoo.projections, "projection", lambda *a: calls.append(1) or projection(*a))
    results = []
    for layer in layers:
        with tf.GradientTape() as tape:
            outputs = layer(inputs, training=True)
            loss = tf.reduce_sum(outputs ** 2)
        results.append((outputs, tape.gradient(loss, layer.trainable_weights), layer(inputs)))
    assert len(calls) == 1  # the patched layer's training call only
    (expected, expected_gradients, expected_inference), (actual, gradients, inference) = results
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    for got, want in zip(gradients, expected_gradients):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(inference, expected_inference)


def test_flattened_backbone_matches_keras_hub_path_and_keeps_its_config(bert_twins, bert_inputs,
                                                                        assert_backbones_train_alike):
    reference, flattened = bert_twins(**BERT)
    assert flatten_projections(flattened) == 7  # query, key, value, attention output; two feed-forward and the pooler
    assert flatten_projections(flattened) == 0
    expected, actual = reference(bert_inputs), flattened(bert_inputs)
    for name in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-5)
    assert_backbones_train_alike(reference, flattened, bert_inputs)
    assert flattened.get_config() == reference.get_config()
    assert not any(getattr(layer, "_zoo_flat", False) for layer in reference._flatten_layers())


def test_zoo_tasks_flatten_their_backbone_projections():
    model = zoo.build("gpt", objective="clm", num_layers=1, hidden_dim=16, intermediate_dim=32, num_heads=2,
                      sequence_length=16)
    flags = [layer.equation for layer in model.backbone._flatten_layers()
             if isinstance(layer, keras.layers.EinsumDense) and getattr(layer, "_zoo_flat", False)]
    assert sorted(set(flags)) == sorted({"abc,cde->abde", "abcd,cde->abe"})
    assert len(flags) == 4
