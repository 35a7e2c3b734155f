"""nsp: the pairs it forms (statistics on the whole default corpus), its errors, and mlm + nsp together."""

import numpy as np
import pytest
import tensorflow as tf

import zoo
import zoo.testing
from zoo.errors import ConfigError, CorpusError, IncompatibleError
from zoo.export import serving_functions
from zoo.objectives.nsp import NextSentencePrediction, truncated_lengths
from zoo.text.segments import split_sentences
from zoo.spec import ModelSpec
from zoo.text.corpus import default_corpus
from zoo.text.tokenizer import default_tokenizer

LENGTH = 64


@pytest.fixture(scope="module")
def tokenizer():
    return default_tokenizer("wordpiece")


@pytest.fixture(scope="module")
def spec(tokenizer):
    return ModelSpec(
        family="test", capabilities=frozenset({"bidirectional", "segments", "pooled"}),
        vocabulary_size=tokenizer.vocabulary_size, special_token_ids=tokenizer.special_token_ids,
        max_sequence_length=512, hidden_dim=8, token_embedding=None,
        input_names=("token_ids", "segment_ids", "padding_mask"), output_names=("sequence_output", "pooled_output"),
    )


def make_pairs(documents, tokenizer, spec, *, seed=0, length=LENGTH, **options):
    examples = NextSentencePrediction(**options).structure(
        tf.data.Dataset.from_tensor_slices(documents), tokenizer, spec, length, seed
    )
    return {key: np.concatenate([batch[key].numpy() for batch in examples.batch(4096)]) for key in
            examples.element_spec}


@pytest.fixture(scope="module")
def corpus_pairs(tokenizer, spec):
    return make_pairs(default_corpus(), tokenizer, spec)


def test_half_the_pairs_are_next_and_every_negative_comes_from_another_document(corpus_pairs):
    labels = corpus_pairs["nsp_label"]
    first, second = corpus_pairs["nsp_first_document"], corpus_pairs["nsp_second_document"]
    assert len(labels) > 4000
    assert set(np.unique(labels)) == {0, 1}
    assert abs(labels.mean() - 0.5) < 0.02, labels.mean()
    assert np.all(first[labels == 0] != second[labels == 0])
    assert np.all(first[labels == 1] == second[labels == 1])


def test_pairs_are_cls_a_sep_b_sep_with_segment_ids_and_padding(corpus_pairs, spec):
    token_ids, segment_ids, mask = (corpus_pairs[k] for k in ("token_ids", "segment_ids", "padding_mask"))
    ids = spec.special_token_ids
    assert token_ids.shape == segment_ids.shape == mask.shape == (len(corpus_pairs["nsp_label"]), LENGTH)
    lengths = mask.sum(1)
    positions = np.arange(LENGTH)[None, :]
    np.testing.assert_array_equal(mask, positions < lengths[:, None])  # real tokens first, then padding
    assert np.all(token_ids[:, 0] == ids["start"])
    is_sep = token_ids == ids["end"]
    assert np.all(is_sep.sum(1) == 2)
    first_sep = np.argmax(is_sep, axis=1)
    assert np.all(token_ids[np.arange(len(lengths)), lengths - 1] == ids["end"])
    assert np.all(first_sep >= 2) and np.all(lengths - first_sep >= 3)  # A and B hold a token each
    expected_segments = (positions > first_sep[:, None]) & (positions < lengths[:, None])
    np.testing.assert_array_equal(segment_ids, expected_segments.astype(np.int32))
    assert np.all(token_ids[mask == 0] == ids["pad"])
    inside = (mask == 1) & ~is_sep & (positions > 0)
    assert not np.isin(token_ids[inside], [ids["pad"], ids["start"], ids["mask"]]).any()
    assert lengths.max() == LENGTH and np.mean(lengths == LENGTH) > 0.1  # long documents fill the sequence


def test_a_and_b_are_runs_of_their_documents_and_a_positive_b_follows_a(corpus_pairs, tokenizer):
    documents = default_corpus()
    ids = tokenizer.special_token_ids

    rows = range(300)
    keys = ("nsp_first_document", "nsp_second_document")
    needed = sorted({int(corpus_pairs[key][row]) for row in rows for key in keys})
    segments = split_sentences(tf.constant([documents[index] for index in needed]))
    tokens = tokenizer(segments.flat_values)  # tokens of each document, segment by segment, as nsp cut them
    splits = tf.gather(tokens.row_splits, segments.row_splits)
    document_tokens = dict(zip(needed, tf.RaggedTensor.from_row_splits(tokens.flat_values, splits).to_list())).get

    def find(run, tokens, start=0):
        return next((i for i in range(start, len(tokens) - len(run) + 1) if tokens[i:i + len(run)] == run), None)

    checked = {0: 0, 1: 0}
    for row in rows:
        tokens = corpus_pairs["token_ids"][row][: corpus_pairs["padding_mask"][row].sum()].tolist()
        first_sep = tokens.index(ids["end"])
        a, b = tokens[1:first_sep], tokens[first_sep + 1:-1]
        first_doc = document_tokens(corpus_pairs["nsp_first_document"][row])
        second_doc = document_tokens(corpus_pairs["nsp_second_document"][row])
        a_at = find(a, first_doc)
        assert a_at is not None, f"row {row}: A is not a run of its document"
        if corpus_pairs["nsp_label"][row]:
            b_at = find(b, first_doc, a_at + len(a))
            assert b_at is not None, f"row {row}: B does not follow A in their document"
            if len(tokens) < LENGTH:  # nothing was truncated: B starts right where A ends
                assert find(b, first_doc, a_at + len(a)) == a_at + len(a)
        else:
            assert find(b, second_doc) is not None, f"row {row}: B is not a run of the other document"
        checked[int(corpus_pairs["nsp_label"][row])] += 1
    assert min(checked.values()) > 100


def test_short_sequence_rate_shortens_the_pairs(tokenizer, spec):
    documents = default_corpus()[:300]
    never = make_pairs(documents, tokenizer, spec, short_sequence_rate=0.0)
    always = make_pairs(documents, tokenizer, spec, short_sequence_rate=1.0)
    full = [np.mean(pairs["padding_mask"].sum(1) == LENGTH) for pairs in (never, always)]
    assert full[1] < 0.7 * full[0], full  # segments longer than a short target still fill the sequence


def test_truncation_removes_from_the_longer_side_as_bert_does():
    def bert(first, second, limit):  # the loop of create_pretraining_data.py
        while first + second > limit:
            if first > second:
                first -= 1
            else:
                second -= 1
        return first, second

    cases = [(a, b) for a in range(1, 14) for b in range(1, 14)]
    first, second = truncated_lengths(tf.constant([a for a, _ in cases]), tf.constant([b for _, b in cases]), 9)
    assert list(zip(first.numpy().tolist(), second.numpy().tolist())) == [bert(a, b, 9) for a, b in cases]


def test_segments_are_sentences_and_paragraphs():
    text = 'First one. "Quoted!" Then e.g. setup.py stays whole?\nYes.\n\nNew paragraph\n   \nlast'
    assert split_sentences(tf.constant([text])).to_list() == [
        [b"First one.", b'"Quoted!"', b"Then e.g. setup.py stays whole?", b"Yes.", b"New paragraph", b"last"]
    ]


def test_the_objective_contract_holds():
    result = zoo.testing.run_objective_test("nsp", "bert", num_layers=1, batch_size=8)
    np.testing.assert_array_equal(result["labels"][:, 0], result["batch"]["nsp_label"])
    assert result["labels"].shape == (8, 1) and np.all(result["sample_weight"] == 1)


@pytest.mark.parametrize("model, message", [
    ("gpt", "gpt is causal; nsp needs pooled, segments; try bert"),
    ("lstm_lm", "lstm_lm is causal, pooled; nsp needs segments; try bert"),
])
def test_models_without_segments_or_pooled_output_are_refused(model, message):
    with pytest.raises(IncompatibleError, match=message):
        zoo.build(model, objective="nsp")


@pytest.fixture(scope="module")
def small_task():
    return zoo.build("bert", objective=["mlm", "nsp"], num_layers=1, sequence_length=32)


def test_corpora_nsp_cannot_pair_are_refused_saying_why(small_task):
    with pytest.raises(CorpusError, match="nsp needs at least two documents"):
        small_task.fit(["One sentence here. Another one there. And a third one."], verbose=0)
    with pytest.raises(CorpusError, match="nsp found no document with two segments"):
        small_task.fit(["just one sentence", "another single sentence"] * 20, verbose=0)
    with pytest.raises(ConfigError, match="nsp needs sequence_length >= 5"):
        zoo.build("bert", objective="nsp", num_layers=1, sequence_length=4).fit(default_corpus()[:50], verbose=0)
    with pytest.raises(ConfigError, match="documents_per_buffer must be an int >= 2"):
        zoo.build("bert", objective={"nsp": {"documents_per_buffer": 1}})


def test_mlm_masks_inside_the_pairs_never_cls_or_sep(small_task):
    ids = small_task.spec.special_token_ids
    dataset = small_task.preprocessor.training_dataset(default_corpus()[:400], batch_size=64, shuffle=False)
    rows = 0
    for inputs, labels, weights in dataset:
        token_ids, positions = inputs["token_ids"].numpy(), inputs["mlm_positions"].numpy()
        selected = weights["mlm"].numpy() > 0
        assert not np.isin(labels["mlm"].numpy()[selected], small_task.spec.all_special_ids).any()
        assert np.all(token_ids[:, 0] == ids["start"]) and np.all((token_ids == ids["end"]).sum(1) == 2)
        segment_ids = inputs["segment_ids"].numpy()
        assert np.all(segment_ids.max(1) == 1)  # pairs, not packed blocks, reach the model
        rows += len(token_ids)
    assert rows > 200


@pytest.fixture(scope="module")
def trained():
    """mlm + nsp (weighted 5) trained for a few epochs on the same 60 pairs: both losses must fall."""
    tf.keras.utils.set_random_seed(0)
    model = zoo.build("bert", objective={"mlm": {}, "nsp": {"loss_weight": 5.0}}, num_layers=1,
                      sequence_length=32)
    data = model.preprocessor.training_dataset(default_corpus()[:96], batch_size=8, shuffle=False).cache()
    history = model.fit(data, epochs=8, verbose=0).history
    return model, data, history


@pytest.mark.slow
def test_one_fit_lowers_both_losses_with_per_objective_weights(trained):
    model, data, history = trained
    assert sorted(history) == ["loss", "mlm_accuracy", "mlm_loss", "nsp_accuracy", "nsp_loss"]
    assert history["mlm_loss"][-1] < 0.7 * history["mlm_loss"][0], history["mlm_loss"]
    assert history["nsp_loss"][-1] < 0.5 * history["nsp_loss"][0], history["nsp_loss"]
    assert history["nsp_accuracy"][-1] > 0.8, history["nsp_accuracy"]
    inputs, labels, weights = next(iter(data))
    outputs = tf.function(lambda inputs: model(inputs, training=False))(inputs)  # eager heads fail in bfloat16
    mlm, nsp = (objective.loss()(labels[o], outputs[o], weights[o]) for objective, o in
                zip(model.objectives, ("mlm", "nsp")))
    np.testing.assert_allclose(model.compute_loss(inputs, labels, outputs, weights), mlm + 5.0 * nsp, rtol=1e-4)


@pytest.mark.slow
def test_export_gives_the_probability_that_next_text_follows_text(trained, tmp_path):
    model, data, _ = trained
    tokenizer = model.tokenizer
    pairs = {0: [], 1: []}
    for inputs, labels, _ in data.unbatch().take(40):
        token_ids = inputs["token_ids"].numpy()[: inputs["padding_mask"].numpy().sum()]
        segment_ids = inputs["segment_ids"].numpy()[: len(token_ids)]
        keep = ~np.isin(token_ids, model.spec.all_special_ids)
        text, next_text = (tokenizer.detokenize(tf.constant([token_ids[keep & (segment_ids == s)]])).numpy()[0]
                           for s in (0, 1))
        pairs[int(labels["nsp"].numpy()[0])].append((text.decode(), next_text.decode()))
    texts = [t for label in (0, 1) for t, _ in pairs[label]]
    next_texts = [n for label in (0, 1) for _, n in pairs[label]]
    function, signature = serving_functions(model)["nsp"]
    assert sorted(signature) == ["next_text", "text"]
    served = function({"text": tf.constant(texts), "next_text": tf.constant(next_texts)})
    probability = served["probability"].numpy()
    assert probability.shape == (len(texts),) and np.all((probability > 0) & (probability < 1))
    np.testing.assert_array_equal(served["is_next"].numpy(), probability > 0.5)
    truth = np.array([0] * len(pairs[0]) + [1] * len(pairs[1]))
    assert np.mean((probability > 0.5) == truth) > 0.8  # the pairs it was trained on, scored from raw text

    result = zoo.testing.run_export_test(model, tmp_path, texts=texts[:3] + next_texts[-3:])
    assert result["signatures"] == ["encode", "mlm", "nsp", "serving_default", "token_ids"]
    assert result["expected"]["nsp"]["probability"].shape == (9,)
    with pytest.raises(tf.errors.InvalidArgumentError, match="give one next_text per text"):
        function({"text": tf.constant(texts[:2]), "next_text": tf.constant(next_texts[:1])})
