"""zoo.head_major_attention: Keras's attention, outputs and gradients, through head-major matmuls while training."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import head_major_attention
from zoo.hashed_dropout import use_hashed_dropout
from zoo.head_major_attention import use_head_major_attention


def _attention_twins(inputs, mask, dtype):
    """Two built attention layers with the same weights and dropout seeds, Keras's and head-major."""
    layers = []
    for head_major in (False, True):
        keras.utils.set_random_seed(0)
        layer = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8, dropout=0.25, dtype=dtype)
        layer(inputs, inputs, attention_mask=mask)  # builds the projections and the dropout layer
        assert use_hashed_dropout(layer) == 1
        if head_major:
            assert use_head_major_attention(layer) == 1 and use_head_major_attention(layer) == 0
        layers.append(layer)
    return layers


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_it_trains_exactly_like_keras_attention(dtype, monkeypatch):
    calls = []
    attend = head_major_attention.attend_head_major
    monkeypatch.setattr(head_major_attention, "attend_head_major", lambda *a, **k: calls.append(1) or attend(*a, **k))
    inputs = tf.random.stateless_normal((2, 12, 32), seed=[5, 6])
    lengths = tf.constant([12, 7])
    mask = tf.sequence_mask(lengths, 12)[:, None, :] & tf.sequence_mask(lengths, 12)[:, :, None]
    results = []
    for layer in _attention_twins(inputs, mask, dtype):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, inputs, attention_mask=mask, training=True)
            loss = tf.reduce_sum(tf.cast(outputs, tf.float32) ** 2)
        gradients = tape.gradient(loss, [inputs] + layer.trainable_weights)
        results.append((outputs, gradients, layer(inputs, inputs, attention_mask=mask)))
    assert len(calls) == 1  # the head-major layer's training call, not its inference call nor Keras's layer
    (keras_out, keras_grads, keras_inference), (ours, our_grads, our_inference) = results
    tolerance = 1e-5 if dtype == "float32" else 5e-2
    np.testing.assert_allclose(tf.cast(ours, tf.float32), tf.cast(keras_out, tf.float32), atol=tolerance)
    for ours_grad, expected in zip(our_grads, keras_grads):
        np.testing.assert_allclose(ours_grad, expected, atol=tolerance * 10, rtol=tolerance)
    np.testing.assert_array_equal(our_inference, keras_inference)  # inference is Keras's own path
    dropped = tf.reduce_mean(tf.cast(tf.equal(tf.cast(ours, tf.float32), tf.cast(our_inference, tf.float32)), tf.float32))
    assert float(dropped) < 0.5  # dropout did act: training and inference outputs differ


def test_scores_requests_and_attention_without_dropout_keep_keras_path(monkeypatch):
    monkeypatch.setattr(head_major_attention, "attend_head_major", lambda *a, **k: pytest.fail("head-major path"))
    inputs = tf.ones((1, 3, 8))
    layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.5)
    use_head_major_attention(layer)
    outputs, scores = layer(inputs, inputs, return_attention_scores=True, training=True)
    assert scores.shape == (1, 2, 3, 3) and outputs.shape == (1, 3, 8)
    plain = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    assert use_head_major_attention(plain) == 1
    assert plain(inputs, inputs, training=True).shape == (1, 3, 8)  # dropout 0: Keras's dot_product_attention
    causal = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.5)
    use_head_major_attention(causal)
    assert causal(inputs, inputs, use_causal_mask=True, training=True).shape == (1, 3, 8)


@pytest.mark.parametrize("family", ["bert", "gpt"])
def test_zoo_backbones_train_their_attention_head_major_and_still_learn(family, monkeypatch):
    calls = []
    attend = head_major_attention.attend_head_major
    monkeypatch.setattr(head_major_attention, "attend_head_major", lambda *a, **k: calls.append(1) or attend(*a, **k))
    keras.utils.set_random_seed(0)
    model = zoo.build(family, objective="mlm" if family == "bert" else "clm", num_layers=2, hidden_dim=16,
                      intermediate_dim=32, num_heads=2, sequence_length=16, dropout=0.1)
    patched = [layer for layer in model.backbone._flatten_layers() if getattr(layer, "_zoo_head_major", False)]
    assert len(patched) == 2  # one self-attention per layer
    history = model.fit(["the cat sat on the mat and the dog sat on the log"] * 64, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert calls and len(calls) % 2 == 0  # each trace of the training step goes through it in both layers
