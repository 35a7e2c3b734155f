"""Packing and the training pipeline on raw strings."""

import numpy as np
import tensorflow as tf

import zoo
from zoo.text.corpus import default_corpus
from zoo.text.packing import pack_token_stream


def test_packing_keeps_every_token_in_order_and_starts_each_block():
    docs = tf.ragged.constant([[10, 11, 12], [13], [14, 15, 16, 17, 18], [19, 20]], dtype=tf.int32)
    chunks = tf.data.Dataset.from_tensor_slices(docs).batch(2).map(lambda r: r.flat_values)
    blocks = list(pack_token_stream(chunks, 4, start_id=1, pad_id=0))
    token_ids = np.stack([b["token_ids"] for b in blocks])
    padding_mask = np.stack([b["padding_mask"] for b in blocks])
    assert np.all(token_ids[:, 0] == 1)
    np.testing.assert_array_equal(token_ids[:, 1:][padding_mask[:, 1:] == 1], np.arange(10, 21))
    assert padding_mask.sum() == 11 + len(blocks)
    assert np.all(padding_mask[:-1] == 1), "only the last block may hold padding"


def test_short_documents_pack_with_under_five_percent_padding():
    documents = [d for d in default_corpus() if len(d.split()) < 30][:2000]
    assert np.median([len(d.split()) for d in documents]) < 30
    model = zoo.build("bert", objective="mlm", sequence_length=128)
    dataset = model.preprocessor.training_dataset(documents, batch_size=32)
    masks = np.concatenate([x["padding_mask"].numpy() for x, _, _ in dataset])
    assert masks.shape[1] == 128 and masks.shape[0] > 50
    assert 1 - masks.mean() < 0.05


def test_training_batches_are_seeded_and_redrawn_each_epoch():
    texts = default_corpus()[:200]
    first = zoo.build("bert", objective="mlm", sequence_length=32, seed=7).preprocessor
    second = zoo.build("bert", objective="mlm", sequence_length=32, seed=7).preprocessor
    run = lambda p: [x["token_ids"].numpy() for x, _, _ in p.training_dataset(texts, batch_size=8)]
    dataset = first.training_dataset(texts, batch_size=8)
    epoch_one = [x["token_ids"].numpy() for x, _, _ in dataset]
    epoch_two = [x["token_ids"].numpy() for x, _, _ in dataset]
    for a, b in zip(epoch_one, run(second)):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(epoch_one, epoch_two))


def test_evaluation_batches_are_identical_every_pass():
    texts = default_corpus()[:100]
    dataset = zoo.build("gpt", objective="clm", sequence_length=32).preprocessor.training_dataset(
        texts, batch_size=8, shuffle=False
    )
    passes = [[y["clm"].numpy() for _, y, _ in dataset] for _ in range(2)]
    for a, b in zip(*passes):
        np.testing.assert_array_equal(a, b)
