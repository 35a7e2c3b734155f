"""sop: pairing statistics, the plugin checks of zoo.testing, training with mlm, export."""

import numpy as np
import pytest
import tensorflow as tf

import zoo
import zoo.testing
from zoo.text.corpus import default_corpus

zoo_sop = pytest.importorskip("zoo_sop", reason="install the plugin first: pip install plugins/zoo-sop")
SentenceOrderPrediction = zoo_sop.SentenceOrderPrediction

LENGTH = 48


@pytest.fixture(scope="module")
def texts():
    return default_corpus()[:200]


@pytest.fixture(scope="module")
def model():
    return zoo.build("bert", objective="sop", num_layers=1, sequence_length=LENGTH)


def examples(model, texts):
    batches = list(model.preprocessor.example_batches(texts, 64))
    return {key: np.concatenate([b[key].numpy() for b in batches]) for key in batches[0]}


def test_sop_is_registered_by_its_distribution():
    assert "sop" in zoo.objectives()
    origin = zoo.registry.objective_entry("sop").origin
    assert (origin.distribution, origin.version, origin.plugin) == ("zoo-sop", "0.1.0", "sop")


def test_pairs_are_two_consecutive_segments_in_order_or_swapped(model, texts):
    ids = model.spec.special_token_ids
    pairs = examples(model, texts)
    assert len(pairs["sop_label"]) > 100
    assert abs(pairs["sop_label"].mean() - 0.5) < 0.1, pairs["sop_label"].mean()
    documents = [" ".join(map(str, model.tokenizer(tf.constant([t])).flat_values.numpy())) for t in texts]
    for token_ids, segment_ids, padding_mask, label in zip(
            pairs["token_ids"], pairs["segment_ids"], pairs["padding_mask"], pairs["sop_label"]):
        length = padding_mask.sum()
        assert padding_mask[:length].all() and not padding_mask[length:].any()
        tokens, segments = token_ids[:length], segment_ids[:length]
        assert tokens[0] == ids["start"] and tokens[-1] == ids["end"] and (tokens == ids["end"]).sum() == 2
        junction = int(np.flatnonzero(tokens == ids["end"])[0])
        np.testing.assert_array_equal(segments, (np.arange(length) > junction).astype(int))
        first, second = tokens[1:junction], tokens[junction + 1:-1]
        assert len(first) and len(second)
        # In order, A then B is a run of one document's tokens; swapped, B then A is.
        run = np.concatenate([first, second] if label == 1 else [second, first])
        assert any(" ".join(map(str, run)) in document for document in documents), (label, run)


def test_pairs_are_seeded(model, texts):
    documents = tf.data.Dataset.from_tensor_slices(texts[:100])

    def pairs(seed):
        stage = SentenceOrderPrediction().structure(documents, model.tokenizer, model.spec, LENGTH, seed)
        return np.stack([example["token_ids"].numpy() for example in stage.take(20)])

    np.testing.assert_array_equal(pairs(0), pairs(0))
    assert not np.array_equal(pairs(0), pairs(1))


def test_passes_the_plugin_author_checks():
    result = zoo.testing.run_objective_test(SentenceOrderPrediction(), "bert", num_layers=1, sequence_length=LENGTH)
    assert result["labels"].dtype == np.int32 and result["labels"].shape == (4,)


def test_gpt_is_refused_for_lack_of_segments_and_pooled():
    with pytest.raises(zoo.errors.IncompatibleError, match=r"sop needs pooled, segments; try bert"):
        zoo.build("gpt", objective="sop")


def test_bad_parameters_are_config_errors():
    with pytest.raises(zoo.errors.ConfigError, match="short_sequence_rate must be in"):
        zoo.build("bert", objective={"sop": {"short_sequence_rate": 2}})
    with pytest.raises(zoo.errors.ConfigError, match="sequence_length >= 5"):
        zoo.build("bert", objective="sop", num_layers=1, sequence_length=4).fit(["One. Two."])


def test_trains_with_mlm_as_in_albert_also_under_mirrored_strategy(texts):
    result = zoo.testing.run_task_test("bert", ["mlm", "sop"], texts=texts[:120], num_layers=1,
                                       sequence_length=LENGTH, batch_size=16, epochs=2)
    assert {"mlm_accuracy", "sop_accuracy"} <= set(result["after"])
    assert result["predictions"]["sop"].shape == (5, 2)  # two texts and zoo.testing.EDGE_TEXTS


def test_export_serves_text_pairs_and_reloads(model, tmp_path):
    result = zoo.testing.run_export_test(model, tmp_path, texts=["First it rains.", "Then the sun comes out."])
    assert result["signatures"] == ["encode", "serving_default", "sop", "token_ids"]
    in_order = result["reloaded"]["sop"]["in_order"]
    assert in_order.shape == (5,) and np.all((in_order >= 0) & (in_order <= 1))
