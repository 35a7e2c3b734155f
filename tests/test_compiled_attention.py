"""zoo.compiled_attention: attention, masked softmax and dropout as XLA-compiled functions, on the kernel measured faster."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import compiled_attention as attention
from zoo import measured_kernels
from zoo.compiled_attention import attention_kernel, compiled_attention, measured_choices

SEED = tf.constant([12, 34], tf.int64)


@pytest.fixture
def fresh_choices(monkeypatch):
    """An empty record of measured attention shapes for this test."""
    monkeypatch.setattr(attention, "_choice", measured_kernels.MeasuredChoice(*attention.KERNELS))


def _operands(dtype, batch=2, heads=3, positions=7, head_dim=4):
    query, key, value = (tf.cast(tf.random.stateless_normal((batch, heads, positions, head_dim), seed=[1, part]), dtype)
                         for part in range(3))
    return [query, key, value]


MASKS = {
    "none": None,
    "padding": tf.sequence_mask([7, 4], 7)[:, None, None, :],  # [batch, 1, 1, key], as Keras expands a padding mask
    "causal": tf.linalg.band_part(tf.ones((7, 7), tf.bool), -1, 0),
    "segments": tf.constant([[0, 0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 0, 0, 1]])[:, None, :, None]
    == tf.constant([[0, 0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 0, 0, 1]])[:, None, None, :],
}


@pytest.mark.parametrize("mask", MASKS, ids=list(MASKS))
@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-5), ("bfloat16", 3e-2)])
def test_it_equals_keras_softmax_and_zoo_dropout_with_their_gradients(mask, dtype, tolerance, assert_function_matches):
    def reference(query, key, value):  # TensorFlow ops, Keras's masked softmax, zoo's hashed dropout, in float32
        return attention._ops_attention(*(tf.cast(t, "float32") for t in (query, key, value)), MASKS[mask], 0.25, SEED)

    assert_function_matches(
        lambda query, key, value: compiled_attention(query, key, value, MASKS[mask], 0.25, SEED),
        reference, _operands(dtype), tolerance,
    )


def test_dropout_acts_with_its_rate_and_the_seed_decides_the_mask():
    query, key, value = _operands("float32", batch=4, heads=4, positions=64, head_dim=8)
    query = query * 0.1  # nearly uniform probabilities: each of 64 keys about 1/64
    value = tf.ones_like(value)  # each context entry is then the sum of a query's kept, rescaled probabilities
    context = compiled_attention(query, key, value, None, 0.25, SEED)
    same = compiled_attention(query, key, value, None, 0.25, SEED)
    other = compiled_attention(query, key, value, None, 0.25, tf.constant([12, 35], tf.int64))
    np.testing.assert_array_equal(context, same)
    assert not np.allclose(context, other)
    np.testing.assert_allclose(tf.reduce_mean(context), 1.0, atol=0.01)  # 1 / (1 - rate) rescaling keeps the mean
    # a query keeps each key with probability 0.75: its sum is 4/3 · Binomial(64, 0.75) / 64, standard deviation 0.07
    np.testing.assert_allclose(tf.math.reduce_std(context[..., 0]), 0.072, rtol=0.2)
    with pytest.raises(ValueError, match=r"dropout rate must be in \(0, 1\)"):
        compiled_attention(query, key, value, None, 0.0, SEED)


def test_a_fully_masked_query_attends_to_nothing_and_passes_no_gradient():
    query, key, value = _operands("float32")
    mask = tf.tensor_scatter_nd_update(tf.ones((2, 1, 7, 7), tf.bool), [[0, 0, 2]], [tf.zeros((7,), tf.bool)])
    with tf.GradientTape() as tape:
        tape.watch(query)
        context = compiled_attention(query, key, value, mask, 0.1, SEED)
        loss = tf.reduce_sum(context)
    np.testing.assert_array_equal(context[0, :, 2], 0.0)  # Keras zeroes the probabilities of a fully masked row
    d_query = tape.gradient(loss, query)
    np.testing.assert_array_equal(d_query[0, :, 2], 0.0)
    assert float(tf.reduce_max(tf.abs(d_query[0, :, 3]))) > 0


@pytest.mark.parametrize("xla_fraction,chosen", [(0.5, "xla"), (0.9, "ops"), (1.2, "ops")])
def test_xla_is_chosen_only_when_clearly_faster_and_each_shape_is_timed_once(
        xla_fraction, chosen, fresh_choices, monkeypatch):
    timed = []

    def median_seconds(*key):
        timed.append(key)
        return {"ops": 0.03, "xla": 0.03 * xla_fraction}

    monkeypatch.setattr(attention, "_median_seconds", median_seconds)
    assert attention_kernel((None, 4, 128, 64), 128, tf.float32, (None, 1, 1, 128), 0.1) == chosen
    assert attention_kernel((32, 4, 128, 64), 128, "float32", (32, 1, 1, 128), 0.1) == chosen  # the same shape
    assert attention_kernel((32, 4, 128, 64), 128, "bfloat16", None, 0.1) == chosen
    assert attention_kernel((2, 2, 16, 8), 16, "float32", None, 0.1) == "ops"  # 0.2 MFLOP: not worth timing
    assert timed == [((32, 4, 128, 64), 128, "float32", (32, 1, 1, 128), 0.1),
                     ((32, 4, 128, 64), 128, "bfloat16", None, 0.1)]
    (first, second) = measured_choices()
    assert (first["dtype"], first["mask_shape"], first["kernel"]) == ("bfloat16", None, chosen)
    assert (second["query_shape"], second["mask_shape"], second["seconds"]["xla"]) == (
        [32, 4, 128, 64], [32, 1, 1, 128], 0.03 * xla_fraction)


def test_a_measurement_times_both_kernels_forward_and_backward(fresh_choices):
    kernel = attention_kernel((16, 4, 128, 64), 256, "float32", (16, 1, 1, 256), 0.1)  # 1.6 GFLOP: timed
    (choice,) = measured_choices()
    assert kernel == choice["kernel"] in attention.KERNELS
    assert set(choice["seconds"]) == set(attention.KERNELS) and min(choice["seconds"].values()) > 0
    faster = choice["seconds"]["xla"] <= measured_kernels.CLEAR_MARGIN * choice["seconds"]["ops"]
    assert kernel == ("xla" if faster else "ops")


def test_a_bert_task_trains_through_the_kernel_measured_while_tracing(fresh_choices, monkeypatch):
    monkeypatch.setattr(measured_kernels, "MEASURED_FLOPS", 0.0)  # measure even this small attention
    used = {"ops": [], "xla": []}
    for kernel, name in (("ops", "attend"), ("xla", "compiled_attention")):
        original = getattr(zoo.head_major_attention, name)
        monkeypatch.setattr(zoo.head_major_attention, name,
                            lambda *args, kernel=kernel, original=original, **kwargs:
                            used[kernel].append(1) or original(*args, **kwargs))
    keras.utils.set_random_seed(0)
    model = zoo.build("bert", objective="mlm", num_layers=2, hidden_dim=16, intermediate_dim=32, num_heads=2,
                      sequence_length=16, dropout=0.1)
    history = model.fit(["the cat sat on the mat and the dog sat on the log"] * 64, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    (choice,) = measured_choices()  # traced with an unknown batch size, timed at 32
    assert choice["query_shape"] == [measured_kernels.UNKNOWN_AXIS_SIZE, 2, 16, 8] and choice["key_positions"] == 16
    assert choice["mask_shape"] == [measured_kernels.UNKNOWN_AXIS_SIZE, 1, 1, 16]
    assert min(choice["seconds"].values()) > 0
    other = "ops" if choice["kernel"] == "xla" else "xla"
    assert used[choice["kernel"]] and len(used[choice["kernel"]]) % 2 == 0 and not used[other]  # both layers, each trace
