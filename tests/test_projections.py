"""zoo.projections: flattened attention projections compute what Keras's einsum computes, faster, on zoo's models only."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.projections import flat_einsum, flatten_projections

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


def test_flattened_backbone_matches_keras_hub_path_and_keeps_its_config(bert_twins, bert_inputs):
    reference, flattened = bert_twins(**BERT)
    assert flatten_projections(flattened) == 4  # query, key, value, attention output
    assert flatten_projections(flattened) == 0
    expected, actual = reference(bert_inputs), flattened(bert_inputs)
    for name in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-5)
    assert flattened.get_config() == reference.get_config()
    assert not any(getattr(layer, "_zoo_flat", False) for layer in reference._flatten_layers())


def test_zoo_tasks_flatten_their_backbone_projections():
    model = zoo.build("gpt", objective="clm", num_layers=1, hidden_dim=16, intermediate_dim=32, num_heads=2,
                      sequence_length=16)
    flags = [layer.equation for layer in model.backbone._flatten_layers()
             if isinstance(layer, keras.layers.EinsumDense) and getattr(layer, "_zoo_flat", False)]
    assert sorted(set(flags)) == sorted({"abc,cde->abde", "abcd,cde->abe"})
    assert len(flags) == 4
