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


def _spy(monkeypatch, name: str) -> list:
    """Record each call of ``zoo.head_major_attention.<name>`` (still calling it)."""
    calls = []
    original = getattr(head_major_attention, name)
    monkeypatch.setattr(head_major_attention, name, lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls


@pytest.mark.parametrize("kernel", ["ops", "xla"])  # zoo.compiled_attention's choice, forced
@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("self_attention", [True, False], ids=["self", "cross"])
def test_it_trains_exactly_like_keras_attention(kernel, dtype, self_attention, monkeypatch):
    monkeypatch.setattr(head_major_attention, "attention_kernel", lambda *args: kernel)
    attended = _spy(monkeypatch, "attend" if kernel == "ops" else "compiled_attention")
    joined = _spy(monkeypatch, "project_heads")
    compute_dtype = keras.DTypePolicy(dtype).compute_dtype  # inputs Keras need not cast: self-attention stays `query is value`
    inputs = tf.cast(tf.random.stateless_normal((2, 12, 32), seed=[5, 6]), compute_dtype)
    value = inputs if self_attention else tf.cast(tf.random.stateless_normal((2, 12, 32), seed=[7, 8]), compute_dtype)
    lengths = tf.constant([12, 7])
    mask = tf.sequence_mask(lengths, 12)[:, None, :] & tf.sequence_mask(lengths, 12)[:, :, None]
    results = []
    for layer in _attention_twins(inputs, mask, dtype):
        with tf.GradientTape() as tape:
            tape.watch([inputs, value])
            outputs = layer(inputs, value, attention_mask=mask, training=True)
            loss = tf.reduce_sum(tf.cast(outputs, tf.float32) ** 2)
        gradients = tape.gradient(loss, [inputs, value] + layer.trainable_weights)
        results.append((outputs, gradients, layer(inputs, value, attention_mask=mask)))
    # the head-major layer's training call, not its inference call nor Keras's layer; one joined projection
    # for self-attention, Keras's three projections for cross-attention
    assert len(attended) == 1 and len(joined) == int(self_attention)
    (keras_out, keras_grads, keras_inference), (ours, our_grads, our_inference) = results
    tolerance = 1e-5 if dtype == "float32" else 5e-2
    np.testing.assert_allclose(tf.cast(ours, tf.float32), tf.cast(keras_out, tf.float32), atol=tolerance)
    for ours_grad, expected in zip(our_grads, keras_grads):
        np.testing.assert_allclose(tf.cast(ours_grad, tf.float32), tf.cast(expected, tf.float32), atol=tolerance * 10,
                                   rtol=tolerance)
    np.testing.assert_array_equal(our_inference, keras_inference)  # inference is Keras's own path
    dropped = tf.reduce_mean(tf.cast(tf.equal(tf.cast(ours, tf.float32), tf.cast(our_inference, tf.float32)), tf.float32))
    assert float(dropped) < 0.5  # dropout did act: training and inference outputs differ


def test_joined_projections_give_each_part_its_gradient_even_when_one_is_unused():
    inputs = tf.random.stateless_normal((2, 5, 8), seed=[1, 2])
    kernels = [tf.random.stateless_normal((8, 2, 4), seed=[3, part]) for part in range(3)]
    biases = [tf.random.stateless_normal((2, 4), seed=[4, part]) for part in range(3)]
    weights = [inputs, *kernels, *biases]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(weights)
        query, _, value = head_major_attention.project_heads(inputs, kernels, biases)
        joined = tf.reduce_sum(query * value)
        reference = [tf.einsum("abc,cde->abde", inputs, kernel) + bias for kernel, bias in zip(kernels, biases)]
        expected = tf.reduce_sum(reference[0] * reference[2])
    np.testing.assert_allclose(joined, expected, rtol=1e-5)
    for ours, theirs in zip(tape.gradient(joined, weights), tape.gradient(expected, weights)):
        if theirs is None:  # the key's kernel and bias: no part of the loss
            theirs = tf.zeros_like(ours)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_scores_requests_and_attention_without_dropout_keep_keras_path(monkeypatch):
    monkeypatch.setattr(head_major_attention, "attend", lambda *a, **k: pytest.fail("head-major path"))
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


def test_attention_whose_dropout_is_keras_own_is_never_compiled(monkeypatch):
    monkeypatch.setattr(head_major_attention, "attention_kernel", lambda *args: "xla")
    monkeypatch.setattr(head_major_attention, "compiled_attention", lambda *args: pytest.fail("compiled attention"))
    attended = _spy(monkeypatch, "attend")
    inputs = tf.ones((1, 3, 8))
    layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.5)
    layer(inputs, inputs)
    use_head_major_attention(layer)  # not use_hashed_dropout: the compiled kernel would drop other elements
    assert layer(inputs, inputs, training=True).shape == (1, 3, 8) and len(attended) == 1


def test_self_attention_with_a_keras_mask_or_lora_keeps_keras_projections(monkeypatch):
    monkeypatch.setattr(head_major_attention, "project_heads", lambda *a, **k: pytest.fail("joined projections"))
    embedded = keras.layers.Embedding(10, 8, mask_zero=True)(tf.constant([[3, 4, 0]]))  # carries a Keras mask
    masked = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.5)
    use_head_major_attention(masked)
    assert masked(embedded, embedded, training=True).shape == (1, 3, 8)
    inputs = tf.ones((1, 3, 8))
    adapted = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.5)
    adapted(inputs, inputs)
    adapted._query_dense.enable_lora(2)
    use_head_major_attention(adapted)
    assert adapted(inputs, inputs, training=True).shape == (1, 3, 8)


@pytest.mark.parametrize("family", ["bert", "gpt"])
def test_zoo_backbones_train_their_attention_head_major_and_still_learn(family, monkeypatch):
    attended, joined = _spy(monkeypatch, "attend"), _spy(monkeypatch, "project_heads")
    keras.utils.set_random_seed(0)
    model = zoo.build(family, objective="mlm" if family == "bert" else "clm", num_layers=2, hidden_dim=16,
                      intermediate_dim=32, num_heads=2, sequence_length=16, dropout=0.1)
    patched = [layer for layer in model.backbone._flatten_layers() if getattr(layer, "_zoo_head_major", False)]
    assert len(patched) == 2  # one self-attention per layer
    history = model.fit(["the cat sat on the mat and the dog sat on the log"] * 64, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    # each trace of the training step goes through both layers, projections joined
    assert attended and len(attended) % 2 == 0 and joined == attended
