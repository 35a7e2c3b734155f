"""zoo.fused_layer_norm: Keras's layer normalisation, outputs and gradients, as compiled passes while training."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import fused_layer_norm
from zoo.fused_layer_norm import fuse_layer_norm, layer_norm

BERT = dict(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=12,
            dropout=0.0)


@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-5), ("bfloat16", 3e-2)])
def test_layer_norm_equals_keras_and_its_gradients(dtype, tolerance, assert_function_matches):
    x = tf.cast(3 * tf.random.stateless_normal((64, 24), seed=[1, 2]) + 1, dtype)
    gamma = tf.random.stateless_normal((24,), seed=[3, 4])
    beta = tf.random.stateless_normal((24,), seed=[5, 6])
    assert_function_matches(
        lambda x, gamma, beta: layer_norm(x, gamma, beta, 1e-3),
        lambda x, gamma, beta: keras.ops.layer_normalization(tf.cast(x, "float32"), gamma, beta, epsilon=1e-3),
        [x, gamma, beta], tolerance,
    )


def test_fused_backbone_trains_as_keras_hub_and_keeps_its_config_and_inference_path(
        bert_twins, bert_inputs, compiled_functions, assert_backbones_train_alike):
    reference, fused = bert_twins(**BERT)
    assert fuse_layer_norm(fused) == 1 + 2 * BERT["num_layers"]  # the embeddings' and two per encoder layer
    assert fuse_layer_norm(fused) == 0
    assert fused.get_config() == reference.get_config()
    assert not any(getattr(layer, "_zoo_fused_layer_norm", False) for layer in reference._flatten_layers())

    # Cubes: the sum of squares of a layer norm's output hardly depends on its input, so its gradient says little.
    assert_backbones_train_alike(reference, fused, bert_inputs, power=3)

    # Inference runs Keras's own ops: no XLA-compiled function ends up in a traced serving graph.
    assert not compiled_functions(fused, bert_inputs, training=False)
    assert compiled_functions(fused, bert_inputs, training=True)


def test_training_flag_reaches_the_fused_call_from_the_outer_model(monkeypatch):
    """LayerNormalization's own call takes no ``training``; the fused one learns it from the model's call."""
    calls = []
    fused = fused_layer_norm.layer_norm
    monkeypatch.setattr(fused_layer_norm, "layer_norm", lambda *a: calls.append(1) or fused(*a))
    inputs = keras.Input((5, 8))
    model = keras.Model(inputs, keras.layers.LayerNormalization()(keras.layers.Dense(8)(inputs)))
    assert fuse_layer_norm(model) == 1
    x = tf.random.stateless_normal((3, 5, 8), seed=[1, 2])
    trained, inferred = model(x, training=True), model(x)
    assert len(calls) == 1  # the training call only
    np.testing.assert_allclose(trained, inferred, rtol=1e-5, atol=1e-5)


def test_other_axes_keep_keras_path(monkeypatch):
    monkeypatch.setattr(fused_layer_norm, "layer_norm", lambda *a: pytest.fail("fused path"))
    layer = keras.layers.LayerNormalization(axis=1)
    x = tf.random.stateless_normal((3, 5, 8), seed=[1, 2])
    expected = layer(x)
    assert fuse_layer_norm(layer) == 1
    np.testing.assert_allclose(layer(x, training=True), expected, rtol=1e-6)
    assert fuse_layer_norm(keras.layers.LayerNormalization(center=False)) == 0


def test_zoo_tasks_fuse_their_layer_norms_and_still_learn():
    keras.utils.set_random_seed(0)
    model = zoo.build("gpt", objective="clm", num_layers=2, hidden_dim=16, intermediate_dim=32, num_heads=2,
                      sequence_length=16)
    fused = [layer.name for layer in model.backbone._flatten_layers()
             if getattr(layer, "_zoo_fused_layer_norm", False)]
    assert len(fused) == 1 + 2 * 2  # GPT-2's final layer norm and two per decoder layer
    texts = ["the cat sat on the mat and the dog sat on the log"] * 64
    history = model.fit(texts, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
