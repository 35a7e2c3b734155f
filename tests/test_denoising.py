"""The denoising objective: each noise function's published statistics, targets, training, export."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
import zoo.testing
from zoo.errors import ConfigError, IncompatibleError, UnknownNameError
from zoo.objectives import noise
from zoo.objectives.denoising import Denoising
from zoo.spec import ModelSpec
from zoo.text.tokenizer import train_tokenizer

SPECIAL = {"pad": 0, "unk": 1, "start": 2, "end": 3, "mask": 4}
SENTENCE_END = (5, 6, 7)
VOCABULARY_SIZE = 1100
SENTINELS = tuple(range(1000, 1100))


def make_spec():
    return ModelSpec(
        family="test", capabilities=frozenset({"decoder"}), vocabulary_size=VOCABULARY_SIZE,
        special_token_ids=SPECIAL, max_sequence_length=512, hidden_dim=8, token_embedding=None,
        input_names=("token_ids", "padding_mask", "decoder_token_ids", "decoder_padding_mask"),
        output_names=("decoder_sequence_output",), sentinel_ids=SENTINELS, sentence_end_ids=SENTENCE_END,
    )


def make_batch(batch_size=256, length=512, seed=0):
    """Packed-block-like rows: [CLS], distinct word ids with some [SEP]s, then padding."""
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(10, 1000, size=(batch_size, length))
    token_ids[:, 0] = SPECIAL["start"]
    token_ids[:, 1:][rng.random((batch_size, length - 1)) < 0.03] = SPECIAL["end"]
    lengths = rng.integers(length * 3 // 4, length + 1, size=batch_size)
    padding_mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
    token_ids = np.where(padding_mask == 1, token_ids, SPECIAL["pad"])
    return tf.constant(token_ids, tf.int32), tf.constant(padding_mask)


@pytest.fixture(scope="module")
def batch():
    token_ids, padding_mask = make_batch()
    candidate = noise.candidates(token_ids, padding_mask, make_spec().all_special_ids)
    return token_ids, padding_mask, candidate


def real_rows(token_ids, padding_mask):
    return [row[mask > 0] for row, mask in zip(token_ids.numpy(), padding_mask.numpy())]


def test_token_masking_masks_15_percent_of_candidates_uniformly(batch):
    token_ids, padding_mask, candidate = batch
    out, out_mask = noise.token_masking(token_ids, padding_mask, tf.constant([1, 2]), candidate=candidate,
                                        mask_id=SPECIAL["mask"])
    masked = (out.numpy() == SPECIAL["mask"])
    n = candidate.numpy().sum(axis=1)
    np.testing.assert_array_equal(masked.sum(axis=1), np.round(np.float32(0.15) * n.astype(np.float32)))
    assert not np.any(masked & ~candidate.numpy())  # specials and padding untouched
    np.testing.assert_array_equal(out.numpy()[~masked], token_ids.numpy()[~masked])
    np.testing.assert_array_equal(out_mask, padding_mask)
    # Uniform over positions: each half of the block gets its share.
    first_half = masked[:, : masked.shape[1] // 2].sum() / candidate.numpy()[:, : masked.shape[1] // 2].sum()
    assert abs(first_half - 0.15) < 0.01


def test_token_deletion_deletes_15_percent_and_keeps_the_order(batch):
    token_ids, padding_mask, candidate = batch
    out, out_mask = noise.token_deletion(token_ids, padding_mask, tf.constant([3, 4]), candidate=candidate,
                                         pad_id=SPECIAL["pad"])
    n = candidate.numpy().sum(axis=1)
    np.testing.assert_array_equal(padding_mask.numpy().sum(1) - out_mask.numpy().sum(1),
                                  np.round(np.float32(0.15) * n.astype(np.float32)))
    for before, after in zip(real_rows(token_ids, padding_mask)[:20], real_rows(out, out_mask)[:20]):
        assert list(before[before < 10]) == list(after[after < 10])  # every special token stays
        position = iter(before)
        assert all(any(token == other for other in position) for token in after)  # a subsequence


def test_span_infilling_has_bart_s_30_percent_in_poisson_3_spans(batch):
    token_ids, padding_mask, candidate = batch
    spans = noise.infilling_spans(candidate, tf.constant([5, 6]))
    n = candidate.numpy().sum(axis=1)
    noise_count = spans["noise"].numpy().sum(axis=1)
    np.testing.assert_array_equal(noise_count, np.ceil(np.float32(0.3) * n.astype(np.float32) - np.float32(1e-3)))
    assert not np.any(spans["noise"].numpy() & ~candidate.numpy())
    lengths = spans["lengths"].numpy()
    drawn = lengths[lengths >= 0]
    # Poisson(3): mean 3, variance 3, P(0) = e^-3 (the last span of each row is cut to fit: a small bias).
    assert abs(drawn.mean() - 3) < 0.1 and abs(drawn.var() - 3) < 0.3
    assert abs(np.mean(drawn == 0) - math.exp(-3)) < 0.01
    np.testing.assert_array_equal(lengths.clip(0).sum(axis=1), noise_count)

    out, out_mask = noise.span_infilling(token_ids, padding_mask, tf.constant([5, 6]), candidate=candidate,
                                         mask_id=SPECIAL["mask"], pad_id=SPECIAL["pad"])
    num_spans = (lengths >= 0).sum(axis=1)
    masks = (out.numpy() == SPECIAL["mask"]).sum(axis=1)
    np.testing.assert_array_equal(masks, num_spans)  # one mask per span, empty spans included
    np.testing.assert_array_equal(out_mask.numpy().sum(1), padding_mask.numpy().sum(1) - noise_count + num_spans)
    kept = np.where(spans["noise"].numpy(), -1, token_ids.numpy())
    for row, mask, after, after_mask in zip(kept[:20], padding_mask.numpy(), out.numpy(), out_mask.numpy()):
        expected = row[(mask > 0) & (row >= 0)]
        after = after[after_mask > 0]
        np.testing.assert_array_equal(after[after != SPECIAL["mask"]], expected)
    # Spans are spread uniformly: the first half of the candidates holds half the noise.
    half = np.cumsum(candidate.numpy(), axis=1) <= (n[:, None] / 2)
    assert abs((spans["noise"].numpy() & half).sum() / noise_count.sum() - 0.5) < 0.02


def test_sentence_permutation_draws_every_order_equally_often():
    sentences = [[11, 12, 5], [21, 22, 23, 6], [31, 32, 33, 34, 3]]  # ends: ".", "!", [SEP]
    row = [SPECIAL["start"], *sum(sentences, []), 0, 0]
    token_ids = tf.constant([row] * 3000, tf.int32)
    padding_mask = tf.cast(token_ids > 0, tf.int32)
    out, out_mask = noise.sentence_permutation(token_ids, padding_mask, tf.constant([7, 8]),
                                               sentence_end_ids=SENTENCE_END, end_id=SPECIAL["end"])
    np.testing.assert_array_equal(out_mask, padding_mask)
    out = out.numpy()
    assert np.all(out[:, 0] == SPECIAL["start"]) and np.all(out[:, -2:] == 0)
    counts = {}
    for permuted in out:
        order = []
        body = list(permuted[1:-2])
        while body:
            index = next(i for i, s in enumerate(sentences) if body[: len(s)] == s)  # whole sentences only
            order.append(index)
            body = body[len(sentences[index]):]
        counts[tuple(order)] = counts.get(tuple(order), 0) + 1
    assert len(counts) == 6
    assert all(abs(count / 3000 - 1 / 6) < 0.025 for count in counts.values())


def test_span_corruption_is_t5_s_with_unique_ordered_sentinels(batch):
    token_ids, padding_mask, candidate = batch
    spans = noise.corruption_spans(candidate, tf.constant([9, 10]))
    n = candidate.numpy().sum(axis=1)
    noise_count = spans["noise"].numpy().sum(axis=1)
    np.testing.assert_array_equal(noise_count, np.round(np.float32(0.15) * n.astype(np.float32)))
    num_spans = spans["start"].numpy().sum(axis=1)
    np.testing.assert_array_equal(num_spans, np.maximum(1, np.round(noise_count / 3)))
    lengths = spans["lengths"].numpy()
    assert lengths[lengths >= 0].min() >= 1 and abs(lengths[lengths >= 0].mean() - 3) < 0.05

    out = noise.span_corruption(token_ids, padding_mask, tf.constant([9, 10]), candidate=candidate,
                                sentinel_ids=SENTINELS, pad_id=SPECIAL["pad"])
    assert out["target_ids"].shape[1] == noise.max_target_length(512)
    inputs = real_rows(out["token_ids"], out["padding_mask"])
    targets = real_rows(out["target_ids"], out["target_mask"])
    for original, inputs_row, target, spans_in_row in zip(real_rows(token_ids, padding_mask), inputs, targets,
                                                          num_spans):
        expected = [t for t in inputs_row if t in SENTINELS]
        # Unique, in order; a span that a [SEP] splits has one for each part.
        assert expected == list(SENTINELS[: len(expected)]) and len(expected) >= spans_in_row
        assert [t for t in target if t in SENTINELS] == expected and target[0] == SENTINELS[0]
        # Putting each span back in place of its sentinel gives the original.
        pieces, rebuilt = {}, []
        for token in target:
            if token in SENTINELS:
                current = pieces.setdefault(token, [])
            else:
                current.append(token)
        for token in inputs_row:
            rebuilt.extend(pieces[token] if token in SENTINELS else [token])
        np.testing.assert_array_equal(rebuilt, original)


@pytest.mark.parametrize("noise_name", ["span_infilling", "sentence_permutation", "span_corruption"])
def test_prepare_is_seeded_and_the_same_inside_dataset_map(noise_name):
    token_ids, padding_mask = make_batch(batch_size=8, length=64)
    batch = {"token_ids": token_ids, "padding_mask": padding_mask}
    objective, spec = Denoising(noise=noise_name), make_spec()
    seed = tf.constant([3, 4], tf.int64)
    direct = objective.prepare(dict(batch), spec, seed)
    mapped = next(iter(tf.data.Dataset.from_tensors(batch).map(lambda f: objective.prepare(f, spec, seed))))
    for a, b in zip(tf.nest.flatten(direct), tf.nest.flatten(mapped)):
        np.testing.assert_array_equal(a, b)
    other = objective.prepare(dict(batch), spec, tf.constant([3, 5], tf.int64))
    assert not np.array_equal(direct[0]["token_ids"], other[0]["token_ids"])


def test_targets_are_teacher_forced_with_no_weight_on_padding():
    token_ids, padding_mask = make_batch(batch_size=8, length=64)
    token_ids = tf.concat([token_ids[:-1], tf.zeros_like(token_ids[:1])], axis=0)  # last row: padding only
    padding_mask = tf.concat([padding_mask[:-1], tf.zeros_like(padding_mask[:1])], axis=0)
    features, labels, weights = Denoising(noise="token_masking").prepare(
        {"token_ids": token_ids, "padding_mask": padding_mask}, make_spec(), tf.constant([0, 1], tf.int64))
    ids, mask, labels, weights = token_ids.numpy(), padding_mask.numpy(), labels.numpy(), weights.numpy()
    np.testing.assert_array_equal(features["decoder_token_ids"], ids)  # the original, starting with [CLS]
    np.testing.assert_array_equal(weights, mask)
    for row in range(7):
        n = mask[row].sum()
        np.testing.assert_array_equal(labels[row, : n - 1], ids[row, 1:n])
        assert labels[row, n - 1] == SPECIAL["end"]
    assert not weights[-1].any()

    features, labels, weights = Denoising(noise="span_corruption").prepare(
        {"token_ids": token_ids, "padding_mask": padding_mask}, make_spec(), tf.constant([0, 1], tf.int64))
    length = int(weights.numpy()[0].sum())
    decoder = features["decoder_token_ids"].numpy()[0]
    assert decoder[0] == SPECIAL["start"] and labels.numpy()[0, length - 1] == SPECIAL["end"]
    np.testing.assert_array_equal(decoder[1:length], labels.numpy()[0, : length - 1])
    assert labels.shape[1] == noise.max_target_length(64) + 1 and not weights.numpy()[-1].any()


def test_bad_noise_and_incompatible_models_are_refused():
    with pytest.raises(UnknownNameError, match="did you mean 'span_infilling'"):
        Denoising(noise="span_infiling")
    with pytest.raises(UnknownNameError, match="poisson_lambda"):
        Denoising(noise={"span_infilling": {"lambda": 2}})
    with pytest.raises(ConfigError, match="use it alone"):
        Denoising(noise=["span_corruption", "token_masking"])
    with pytest.raises(ConfigError, match="rate must be in"):
        Denoising(noise={"token_masking": {"rate": 1.5}})
    with pytest.raises(IncompatibleError, match="bert is .*; denoising needs decoder; try autoencoder"):
        zoo.build("bert", objective="denoising")
    with pytest.raises(ConfigError, match="does not apply to feature vectors"):
        zoo.build("autoencoder", objective={"denoising": {"noise": "span_infilling"}}, input_dim=4)
    tokenizer = train_tokenizer(["a few words to train on."] * 4, "wordpiece", 100)
    with pytest.raises(ConfigError, match=r"needs 5 sentinel tokens .*with_sentinels"):
        zoo.build("autoencoder", objective={"denoising": {"noise": "span_corruption"}}, tokenizer=tokenizer,
                  sequence_length=100, hidden_dim=8, embedding_dim=8, bottleneck_dim=8)
    model = zoo.build("autoencoder", objective={"denoising": {"noise": "span_corruption"}},
                      tokenizer=tokenizer.with_sentinels(5), sequence_length=100, hidden_dim=8, embedding_dim=8,
                      bottleneck_dim=8)
    assert model.spec.sentinel_ids == tuple(range(tokenizer.vocabulary_size, tokenizer.vocabulary_size + 5))


def test_default_spec_has_sentinels_and_sentence_ends_that_mlm_never_picks():
    model = zoo.build("autoencoder", sequence_length=16, hidden_dim=8, embedding_dim=8, bottleneck_dim=8)
    spec, tokenizer = model.spec, model.tokenizer
    assert [tokenizer.id_to_token(i) for i in spec.sentinel_ids[:2]] == ["<extra_id_0>", "<extra_id_1>"]
    assert spec.sentinel_ids[-1] == spec.vocabulary_size - 1 and len(spec.sentinel_ids) == 100
    assert {tokenizer.id_to_token(i) for i in spec.sentence_end_ids} == {".", "!", "?"}
    assert set(spec.sentinel_ids) <= set(spec.all_special_ids)
    assert tokenizer(["<extra_id_0> text"]).to_list()[0][0] not in spec.sentinel_ids


TEXTS = [  # ten tokens each: with [CLS] and [SEP], every block of 12 is one whole text
    "the cat sat on the mat and ate fish.", "a dog ran in the park with red balls.",
    "birds fly over the sea when the wind blows.", "we read old books at night by the fire.",
    "the sun is very hot today in the city.", "fish swim in the cold lake under the ice.",
    "she plays the piano well for her young son.", "he drinks cold water after a long walk home.",
]


def test_the_autoencoder_learns_to_reconstruct():
    tokenizer = train_tokenizer(TEXTS * 4, "wordpiece", 300)
    assert {len(row) for row in tokenizer(TEXTS).to_list()} == {10}
    keras.utils.set_random_seed(0)
    model = zoo.build("autoencoder", objective={"denoising": {"noise": "token_masking"}}, tokenizer=tokenizer,
                      sequence_length=12, hidden_dim=64, embedding_dim=32, bottleneck_dim=64, dropout=0.0,
                      precision="float32")
    model.compile(optimizer=keras.optimizers.AdamW(3e-3, global_clipnorm=1.0))
    before = model.evaluate(TEXTS, verbose=0, return_dict=True)
    model.fit(TEXTS * 32, batch_size=8, epochs=6, verbose=0)
    after = model.evaluate(TEXTS, verbose=0, return_dict=True)
    numbers = f"before {before}, after {after}"
    assert after["loss"] < 0.05 * before["loss"], numbers
    assert after["denoising_accuracy"] > 0.95 > before["denoising_accuracy"], numbers
    # A decoder that ignores the code is a plain LM: it must guess each text's first
    # token (one text in eight right). Reconstructing most texts needs the code.
    assert before["denoising_exact_match"] == 0 and after["denoising_exact_match"] >= 0.75, numbers


def test_the_vector_autoencoder_learns_to_remove_gaussian_noise():
    rng = np.random.default_rng(0)
    vectors = (rng.normal(size=(512, 3)) @ rng.normal(size=(3, 20))).astype("float32")  # rank 3
    keras.utils.set_random_seed(0)
    model = zoo.build("autoencoder", input_dim=20, bottleneck_dim=4, dropout=0.0)
    before = model.evaluate(vectors, verbose=0, return_dict=True)
    model.fit(tf.data.Dataset.from_tensor_slices(vectors).batch(16), batch_size=32, epochs=4, verbose=0)
    after = model.evaluate(vectors, verbose=0, return_dict=True)
    assert after["loss"] < 0.05 * before["loss"]
    reconstruction = model.predict({"features": vectors[:8]}, verbose=0)["denoising"]
    assert reconstruction.shape == (8, 20) and np.mean((reconstruction - vectors[:8]) ** 2) < 0.1 * vectors.var()
    with pytest.raises(ConfigError, match=r"feature vectors \[n, 20\], got shape \(512, 5\)"):
        model.fit(vectors[:, :5])
    with pytest.raises(ConfigError, match="takes no sequence_length"):
        zoo.build("autoencoder", input_dim=20, sequence_length=8)


@pytest.mark.slow
def test_the_reconstruct_endpoint_reloads_in_a_fresh_process(tmp_path):
    keras.utils.set_random_seed(0)
    model = zoo.build("autoencoder", sequence_length=16, hidden_dim=32, embedding_dim=32, bottleneck_dim=16)
    model.fit(zoo.text.corpus.default_corpus()[:32], batch_size=8, epochs=1, verbose=0)
    result = zoo.testing.run_export_test(model, tmp_path)
    assert result["signatures"] == ["denoising", "encode", "serving_default", "token_ids"]
    text, token_ids = result["expected"]["denoising"]["text"], result["expected"]["denoising"]["token_ids"]
    assert text.shape == (6,) and token_ids.shape == (6, 15) and token_ids.dtype == np.int32
    assert not np.isin(token_ids, [model.spec.special_token_ids["end"]]).any()  # decoding stops there
