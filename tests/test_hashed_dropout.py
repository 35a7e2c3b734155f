"""zoo.hashed_dropout: Bernoulli masks at the exact rate, independent, reproducible; Keras's path elsewhere."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.hashed_dropout import hashed_dropout, use_hashed_dropout

N = 1 << 20


def _kept(outputs) -> np.ndarray:
    return tf.cast(outputs, "float32").numpy().ravel() != 0


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype("float64"), b.astype("float64"))[0, 1])


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_keeps_each_element_with_probability_one_minus_rate_and_scales_the_kept(rate, dtype):
    inputs = tf.cast(tf.random.stateless_uniform((N,), seed=[1, 2], minval=1.0, maxval=2.0), dtype)
    outputs = hashed_dropout(inputs, rate, tf.constant([11, 0], tf.int64))
    assert outputs.dtype == inputs.dtype and outputs.shape == inputs.shape
    kept = _kept(outputs)
    assert abs(kept.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / N)
    expected = tf.cast(inputs, "float32").numpy() / (1 - rate)
    np.testing.assert_allclose(tf.cast(outputs, "float32").numpy()[kept], expected[kept],
                               rtol=1e-6 if dtype == "float32" else 1e-2)
    # Kept counts of 1024-element blocks spread as a binomial's do (no clumping, no over-regular masks).
    counts = kept.reshape(-1, 1024).sum(axis=1)
    assert 0.8 < counts.var() / (1024 * rate * (1 - rate)) < 1.2


def test_masks_are_independent_across_neighbours_rows_calls_and_layers():
    rate, bound = 0.5, 5 / np.sqrt(N)
    inputs = tf.ones((N // 256, 256))
    first_layer, second_layer = keras.random.SeedGenerator(3), keras.random.SeedGenerator(4)
    call_1 = _kept(hashed_dropout(inputs, rate, first_layer.next()))
    call_2 = _kept(hashed_dropout(inputs, rate, first_layer.next()))
    other_layer = _kept(hashed_dropout(inputs, rate, second_layer.next()))
    assert abs(_correlation(call_1[:-1], call_1[1:])) < bound  # neighbours
    assert abs(_correlation(call_1[:-256], call_1[256:])) < bound  # the same column of the next row
    assert abs(_correlation(call_1, call_2)) < bound  # a layer's next call (its seed steps by one)
    assert abs(_correlation(call_1, other_layer)) < bound  # another layer
    assert abs(_correlation(call_1[:-1], call_2[1:])) < bound  # no call is a shift of another


def test_the_same_seed_gives_the_same_mask_and_the_gradient_uses_it():
    inputs = tf.random.stateless_normal((64, 48), seed=[5, 6])
    weights = tf.random.stateless_normal((64, 48), seed=[7, 8])
    seed = tf.constant([21, 3], tf.int64)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = hashed_dropout(inputs, 0.3, seed)
        loss = tf.reduce_sum(outputs * weights)
    np.testing.assert_array_equal(hashed_dropout(inputs, 0.3, seed), outputs)
    assert not np.array_equal(hashed_dropout(inputs, 0.3, tf.constant([21, 4], tf.int64)), outputs)
    kept = outputs.numpy() != 0
    np.testing.assert_allclose(tape.gradient(loss, inputs), np.where(kept, weights.numpy() / 0.7, 0.0), rtol=1e-6)


def test_a_rate_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        hashed_dropout(tf.ones((4,)), 1.0, tf.constant([0, 0], tf.int64))
    np.testing.assert_array_equal(hashed_dropout(tf.ones((4,)), 0.0, tf.constant([0, 0], tf.int64)), np.ones(4))


def test_dropout_layers_take_the_hashed_path_only_while_training():
    inputs = tf.random.stateless_normal((32, 64), seed=[9, 10])
    keras.utils.set_random_seed(0)
    layer = keras.layers.Dropout(0.4)
    assert use_hashed_dropout(layer) == 1 and use_hashed_dropout(layer) == 0
    np.testing.assert_array_equal(layer(inputs, training=False), inputs)
    first, second = layer(inputs, training=True), layer(inputs, training=True)
    assert not np.array_equal(first, second)  # the layer's SeedGenerator steps between calls
    keras.utils.set_random_seed(0)
    again = keras.layers.Dropout(0.4)
    use_hashed_dropout(again)
    np.testing.assert_array_equal(again(inputs, training=True), first)  # reproducible from the global seed

    # A noise_shape keeps Keras's broadcast mask; subclasses such as SpatialDropout1D are left alone.
    broadcast = keras.layers.Dropout(0.5, noise_shape=(32, 1))
    use_hashed_dropout(broadcast)
    rows = _kept(broadcast(inputs, training=True)).reshape(32, 64)
    assert np.all(rows.all(axis=1) | ~rows.any(axis=1))
    assert use_hashed_dropout(keras.layers.SpatialDropout1D(0.5)) == 0


def test_zoo_tasks_use_it_in_their_backbone_and_still_learn(compiled_functions):
    keras.utils.set_random_seed(0)
    model = zoo.build("bert", objective="mlm", num_layers=2, hidden_dim=16, intermediate_dim=32, num_heads=2,
                      sequence_length=16, dropout=0.1)
    hashed = [layer for layer in model.backbone._flatten_layers() if getattr(layer, "_zoo_hashed_dropout", False)]
    assert len(hashed) == 1 + 3 * 2  # the embeddings', and per layer attention probabilities, attention, feed-forward
    texts = ["the cat sat on the mat and the dog sat on the log"] * 64
    history = model.fit(texts, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    inputs = {name: np.ones((2, 16), "int32") for name in model.spec.input_names}
    assert not compiled_functions(model.backbone, inputs, training=False)
