"""The data half of mlm and clm: statistics, determinism, labels."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.errors import ConfigError
from zoo.objectives.clm import CausalLM
from zoo.objectives.mlm import MaskedLM
from zoo.spec import ModelSpec
from zoo.testing import run_objective_test

SPECIAL = {"pad": 0, "unk": 1, "start": 2, "end": 3, "mask": 4}
VOCABULARY_SIZE = 1000


def make_spec(capabilities=("bidirectional",)):
    return ModelSpec(
        family="test", capabilities=frozenset(capabilities), vocabulary_size=VOCABULARY_SIZE,
        special_token_ids=SPECIAL, max_sequence_length=512, hidden_dim=8, token_embedding=None,
        input_names=("token_ids", "padding_mask"), output_names=("sequence_output",),
    )


def make_batch(batch_size=512, length=128, seed=0):
    """Random text-like rows: [CLS] tokens with [SEP]s inside, then padding."""
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(5, VOCABULARY_SIZE, size=(batch_size, length))
    token_ids[:, 0] = SPECIAL["start"]
    token_ids[rng.random((batch_size, length)) < 0.05] = SPECIAL["end"]
    lengths = rng.integers(length // 2, length + 1, size=batch_size)
    padding_mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
    token_ids = np.where(padding_mask == 1, token_ids, SPECIAL["pad"])
    return {"token_ids": tf.constant(token_ids, tf.int32), "padding_mask": tf.constant(padding_mask)}


@pytest.fixture(scope="module")
def masked():
    batch = make_batch()
    features, labels, weights = MaskedLM().prepare(batch, make_spec(), tf.constant([1, 2]))
    return batch, features, labels.numpy(), weights.numpy()


def test_mlm_selects_fifteen_percent_of_candidates_and_never_special_or_padding(masked):
    batch, features, labels, weights = masked
    original = batch["token_ids"].numpy()
    candidate = (batch["padding_mask"].numpy() == 1) & (original > 4)
    positions = features["mlm_positions"].numpy()
    selected = weights == 1
    rows = np.nonzero(selected)[0]
    chosen = original[rows, positions[selected]]
    assert np.all(chosen > 4), "a special or padding token was selected"
    assert np.all(batch["padding_mask"].numpy()[rows, positions[selected]] == 1)
    rate = selected.sum() / candidate.sum()
    assert abs(rate - 0.15) < 0.01, rate
    # The documented counting rule, row by row.
    expected = np.minimum(20, np.maximum(1, np.round(0.15 * candidate.sum(1))))
    np.testing.assert_array_equal(selected.sum(1), expected)
    np.testing.assert_array_equal(labels[selected], chosen)


def test_mlm_splits_80_10_10(masked):
    batch, features, labels, weights = masked
    selected = weights == 1
    positions = features["mlm_positions"].numpy()
    rows = np.nonzero(selected)[0]
    corrupted = features["token_ids"].numpy()[rows, positions[selected]]
    original = labels[selected]
    to_mask = np.mean(corrupted == SPECIAL["mask"])
    kept = np.mean(corrupted == original)
    randomized = np.mean((corrupted != original) & (corrupted != SPECIAL["mask"]))
    assert abs(to_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(randomized - 0.1) < 0.02
    assert np.all(corrupted[corrupted != SPECIAL["mask"]] > 4), "random replacement drew a special token"


def test_mlm_leaves_unselected_positions_alone(masked):
    batch, features, labels, weights = masked
    changed = features["token_ids"].numpy() != batch["token_ids"].numpy()
    positions = features["mlm_positions"].numpy()
    selected_map = np.zeros_like(changed)
    rows, cols = np.nonzero(weights == 1)
    selected_map[rows, positions[rows, cols]] = True
    assert not np.any(changed & ~selected_map)


def test_mlm_is_seeded_and_equal_in_dataset_map():
    batch = make_batch(batch_size=8, length=32)
    objective, spec = MaskedLM(), make_spec()
    first = objective.prepare(batch, spec, tf.constant([3, 4]))
    again = objective.prepare(batch, spec, tf.constant([3, 4]))
    other = objective.prepare(batch, spec, tf.constant([5, 6]))
    mapped = next(iter(
        tf.data.Dataset.from_tensors(batch).map(lambda f: objective.prepare(f, spec, tf.constant([3, 4])))
    ))
    for a, b in [(first, again), (first, mapped)]:
        np.testing.assert_array_equal(a[0]["token_ids"], b[0]["token_ids"])
        np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(first[0]["token_ids"], other[0]["token_ids"])


def test_mlm_inference_positions_are_the_written_mask_tokens():
    token_ids = tf.constant([[2, 10, 4, 11, 4, 3, 0], [2, 12, 13, 3, 0, 0, 0]])
    features = {"token_ids": token_ids, "padding_mask": tf.cast(token_ids > 0, tf.int32)}
    positions = MaskedLM(max_predictions=3).prepare_inference(features, make_spec())["mlm_positions"]
    np.testing.assert_array_equal(positions, [[2, 4, 0], [0, 0, 0]])


def test_mlm_rejects_bad_parameters():
    with pytest.raises(ConfigError, match="mask_rate must be in"):
        MaskedLM(mask_rate=1.5)
    with pytest.raises(ConfigError, match="sum to at most 1"):
        MaskedLM(mask_token_rate=0.8, random_token_rate=0.3)


def test_clm_labels_are_next_tokens_and_padding_has_no_weight():
    token_ids = tf.constant([[2, 7, 8, 9, 3], [2, 5, 6, 0, 0]])
    features = {"token_ids": token_ids, "padding_mask": tf.cast(token_ids > 0, tf.int32)}
    out, labels, weights = CausalLM().prepare(features, make_spec(("causal",)), tf.constant([0, 0]))
    np.testing.assert_array_equal(labels, [[7, 8, 9, 3, 0], [5, 6, 0, 0, 0]])
    np.testing.assert_array_equal(weights, [[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    assert out["token_ids"] is token_ids


@pytest.mark.parametrize("objective, model_name", [("mlm", "bert"), ("clm", "gpt"), ("clm", "lstm_lm")])
def test_builtin_objectives_pass_the_plugin_author_checks(objective, model_name):
    # Seeded and equal in Dataset.map, model inputs and dtypes, padding unweighted, incompatible models refused.
    result = run_objective_test(objective, model_name, num_layers=1, sequence_length=32, batch_size=4)
    assert result["sample_weight"].sum() > 0
