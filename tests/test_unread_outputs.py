"""Backbone layers that only feed outputs no head reads are frozen; training on raw text gives Keras nothing to warn about."""

import warnings

import keras
import numpy as np
import pytest

import zoo
from zoo.text.corpus import default_corpus
from zoo.unread_outputs import freeze_unread_outputs

TINY = {"num_layers": 1, "hidden_dim": 32, "num_heads": 2, "intermediate_dim": 64, "sequence_length": 32}


@pytest.fixture(scope="module")
def texts():
    return default_corpus()[:120]


def _user_warnings(run):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return [str(warning.message) for warning in caught if issubclass(warning.category, UserWarning)]


def _weights(layer):
    return [np.array(weight) for weight in layer.weights]


def test_masked_lm_alone_freezes_the_pooler_and_keras_warns_only_of_a_real_shortfall(texts):
    keras.utils.set_random_seed(0)
    model = zoo.build("bert", objective="mlm", **TINY)
    pooler = model.backbone.get_layer("pooled_dense")
    embedding = model.backbone.get_layer("token_embedding")
    assert [layer.name for layer in model.backbone.layers if layer.weights and not layer.trainable] == ["pooled_dense"]
    assert not {id(weight) for weight in pooler.weights} & {id(weight) for weight in model.trainable_weights}
    pooler_before, embedding_before = _weights(pooler), _weights(embedding)

    def run():
        model.fit(texts, batch_size=8, epochs=1, validation_data=texts[:40], verbose=0)
        model.evaluate(texts[:40], verbose=0)
        model.predict(texts[:10], verbose=0)

    assert _user_warnings(run) == []
    assert all(np.array_equal(a, b) for a, b in zip(pooler_before, _weights(pooler)))
    assert not np.array_equal(embedding_before[0], _weights(embedding)[0])
    assert model.backbone.output["pooled_output"] is not None  # the backbone still computes and exports it

    # A step count the data cannot fill is still worth Keras's warning.
    warned = _user_warnings(lambda: model.fit(texts[:40], batch_size=8, epochs=1, steps_per_epoch=1000, verbose=0))
    assert any("ran out of data" in message for message in warned), warned


def test_with_next_sentence_prediction_the_pooler_trains(texts):
    keras.utils.set_random_seed(0)
    model = zoo.build("bert", objective=["mlm", "nsp"], **TINY)
    pooler = model.backbone.get_layer("pooled_dense")
    assert all(layer.trainable for layer in model.backbone.layers)
    before = _weights(pooler)
    assert _user_warnings(lambda: model.fit(texts, batch_size=8, epochs=1, verbose=0)) == []
    assert not np.array_equal(before[0], _weights(pooler)[0])


def test_pseudo_labeling_an_autoencoder_freezes_its_decoder_but_not_the_shared_embedding(texts):
    model = zoo.build("autoencoder", objective={"pseudo_label": {"classes": ["a", "b"]}}, sequence_length=32)
    frozen = [layer.name for layer in model.backbone.layers if layer.weights and not layer.trainable]
    assert frozen and all(name.startswith("decoder_") for name in frozen)
    assert model.backbone.get_layer("token_embedding").trainable
    data = {"labeled": (texts[:16], ["a", "b"] * 8), "unlabeled": texts[16:]}
    assert _user_warnings(lambda: model.fit(data, batch_size=8, epochs=1, verbose=0)) == []


def test_a_layer_that_shares_a_weight_with_a_read_output_stays_trainable():
    class TiedLogits(keras.layers.Layer):
        def __init__(self, embedding, **kwargs):
            super().__init__(**kwargs)
            self.embedding = embedding

        def call(self, x):
            return keras.ops.matmul(x, keras.ops.transpose(self.embedding.embeddings))

    token_ids = keras.Input((4,), dtype="int32")
    embedding = keras.layers.Embedding(10, 8, name="embedding")
    sequence = embedding(token_ids)
    pooled = keras.layers.Dense(8, name="pooler")(sequence[:, 0])
    logits = TiedLogits(embedding, name="tied_logits")(sequence)
    backbone = keras.Model(token_ids, {"sequence_output": sequence, "pooled_output": pooled, "logits": logits})
    inputs = keras.Input((4,), dtype="int32")
    outputs = backbone(inputs)
    head = keras.layers.Dense(2, name="head")(outputs["sequence_output"])
    assert freeze_unread_outputs(backbone, outputs, {"head": head}) == ["pooler"]
    assert embedding.trainable and embedding.embeddings.trainable
