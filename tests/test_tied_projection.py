"""zoo.tied_projection: the tied output projection's forward product on the kernel measured faster."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import measured_kernels, tied_projection
from zoo.tied_projection import forward_kernel, measure_tied_projections, measured_choices, tied_logits


@pytest.fixture
def fresh_choices(monkeypatch):
    """An empty record of measured shapes for this test."""
    monkeypatch.setattr(tied_projection, "_choice", measured_kernels.MeasuredChoice(*tied_projection.KERNELS))


@pytest.mark.parametrize("kernel", tied_projection.KERNELS)
@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-5), ("bfloat16", 3e-2)])
def test_tied_logits_equal_keras_reverse_embedding_and_its_gradients(kernel, dtype, tolerance,
                                                                    assert_function_matches):
    inputs = tf.cast(tf.random.stateless_normal((48, 16), seed=[1, 2]), dtype)
    embeddings = tf.cast(tf.random.stateless_normal((300, 16), seed=[3, 4]), dtype)
    assert_function_matches(
        lambda inputs, embeddings: tied_logits(inputs, embeddings, kernel),
        lambda inputs, embeddings: tf.cast(tf.matmul(inputs, tf.transpose(embeddings)), "float32"),
        [inputs, embeddings], tolerance,
    )
    with pytest.raises(ValueError, match="kernel must be one of"):
        tied_logits(inputs, embeddings, "cublas")


@pytest.mark.parametrize("xla_fraction,chosen", [(0.5, "xla"), (0.9, "matmul"), (1.2, "matmul")])
def test_xla_is_chosen_only_when_clearly_faster_and_each_shape_is_timed_once(
        xla_fraction, chosen, fresh_choices, monkeypatch):
    timed = []

    def median_seconds(*key):
        timed.append(key)
        return {"matmul": 0.2, "xla": 0.2 * xla_fraction}

    monkeypatch.setattr(tied_projection, "_median_seconds", median_seconds)
    assert forward_kernel(4096, 256, 8192) == chosen
    assert forward_kernel(4096, 256, 8192) == chosen
    assert forward_kernel(4096, 256, 8192, "bfloat16") == chosen
    assert forward_kernel(16, 32, 1000) == "matmul"  # 1 MFLOP: not worth timing
    assert timed == [(4096, 256, 8192, "float32"), (4096, 256, 8192, "bfloat16")]
    (first, second) = measured_choices()
    assert (first["dtype"], first["kernel"], first["seconds"]["xla"]) == ("bfloat16", chosen, 0.2 * xla_fraction)
    assert (second["rows"], second["hidden_dim"], second["vocabulary_size"]) == (4096, 256, 8192)


def test_a_measurement_times_both_kernels_on_the_shape(fresh_choices):
    kernel = forward_kernel(1024, 64, 8192)  # 1.07 GFLOP: above the threshold
    (choice,) = measured_choices()
    assert kernel == choice["kernel"] in tied_projection.KERNELS
    assert set(choice["seconds"]) == set(tied_projection.KERNELS) and min(choice["seconds"].values()) > 0
    faster = choice["seconds"]["xla"] <= measured_kernels.CLEAR_MARGIN * choice["seconds"]["matmul"]
    assert kernel == ("xla" if faster else "matmul")


def test_a_gpt_task_trains_through_the_measured_kernel_and_infers_through_keras(fresh_choices, monkeypatch):
    monkeypatch.setattr(measured_kernels, "MEASURED_FLOPS", 0.0)  # measure even this small head
    kernels = []
    measured = tied_projection.tied_logits
    monkeypatch.setattr(tied_projection, "tied_logits",
                        lambda inputs, embeddings, kernel: kernels.append(kernel) or measured(inputs, embeddings, kernel))
    keras.utils.set_random_seed(0)
    model = zoo.build("gpt", objective="clm", num_layers=1, sequence_length=32, dropout=0.0)
    embedding = model.spec.token_embedding
    assert getattr(embedding, "_zoo_measured_tied_projection", False)
    assert measure_tied_projections(model.backbone) == 0

    texts = zoo.text.corpus.default_corpus()[:200]
    before = model.evaluate(texts, batch_size=8, verbose=0, return_dict=True)["loss"]
    model.fit(texts, batch_size=8, epochs=2, verbose=0)
    assert model.evaluate(texts, batch_size=8, verbose=0, return_dict=True)["loss"] < before
    (choice,) = measured_choices()  # traced with an unknown batch size, timed at 32 sequences of 32 tokens
    assert (choice["rows"], choice["hidden_dim"], choice["vocabulary_size"]) == (
        measured_kernels.UNKNOWN_AXIS_SIZE * 32, embedding.output_dim, embedding.input_dim)
    assert set(kernels) == {choice["kernel"]}

    # Inference is Keras's reverse embedding: same logits as the unpatched layer's own call.
    hidden = tf.random.stateless_normal((2, 32, embedding.output_dim), seed=[5, 6])
    kernels.clear()
    keras_logits = keras.layers.ReversibleEmbedding.call(embedding, hidden, reverse=True)
    np.testing.assert_allclose(embedding(hidden, reverse=True), keras_logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(embedding(hidden, reverse=True, training=True), keras_logits, rtol=1e-4, atol=1e-4)
    assert kernels == [forward_kernel(2 * 32, embedding.output_dim, embedding.input_dim)]  # a shape of its own
    assert len(measured_choices()) == 2


def test_untied_and_soft_capped_embeddings_keep_keras_path():
    untied = keras.layers.ReversibleEmbedding(100, 8, tie_weights=False)
    capped = keras.layers.ReversibleEmbedding(100, 8, logit_soft_cap=30.0)
    plain = keras.layers.Embedding(100, 8)
    for layer in (untied, capped, plain):
        layer.build((None, 5))
        assert measure_tied_projections(layer) == 0
