"""Sentence-order prediction (``sop``), as in ALBERT (Lan et al., 2020).

Each example is ``[CLS] A [SEP] B [SEP]`` where A and B are two
consecutive runs of sentences of one document; half the time they are
swapped. A two-way head on ``pooled_output`` predicts the order. Unlike
next-sentence prediction, both orders use the same two texts, so the
topic gives nothing away: only coherence does.

Label convention: ``sop_label`` is 1 when A comes before B in the document
("in order") and 0 when they were swapped. (ALBERT's
``sentence_order_labels`` use the opposite.)

The structure stage, all TensorFlow ops, run on batches of
``documents_per_batch`` documents:

- A document is cut into sentences after ``.``, ``!`` or ``?`` (and any
  closing quotes or brackets) followed by whitespace and a character that
  is not a lowercase letter, and at blank lines; sentences without tokens
  are dropped.
- Per document the target length is ``sequence_length - 3`` or, with
  probability ``short_sequence_rate`` (0.1, ALBERT's ``short_seq_prob``),
  uniform in ``[2, sequence_length - 3]``.
- Sentences are grouped into chunks: a sentence belongs to chunk
  ``offset // target``, where ``offset`` counts the document's tokens
  before it. Every chunk of at least two sentences gives one example: A is
  its first ``k`` sentences, ``k`` uniform in ``[1, sentences - 1]``, and B
  the rest.
- A pair longer than ``sequence_length - 3`` tokens loses tokens from the
  far ends, the start of A and the end of B, so the junction where the
  order shows is kept: A keeps at most ``max(budget - len(B), budget // 2)``
  tokens and B what is left of the budget.
- With probability 1/2 the two are swapped; the examples of a batch are
  shuffled.

Randomness is stateless, seeded by ``(seed, batch index)``: the same
documents in the same order give the same examples.

Serving: the ``sop`` signature takes ``text`` and ``next_text`` and returns
``in_order``, the probability that ``text`` comes before ``next_text``.
"""

from __future__ import annotations

import keras
import keras_hub
import tensorflow as tf

import zoo
from zoo.errors import ConfigError
from zoo.text.segments import split_sentences

__version__ = "0.1.0"

#: ``[CLS]``, ``[SEP]``, ``[SEP]``.
NUM_SPECIAL_TOKENS = 3


def kept_lengths(first, second, budget):
    """Tokens A and B keep so that together they fit in `budget`.

    A keeps ``min(len(A), max(budget - len(B), budget // 2))``; B keeps the rest of the budget.

    Example:
        >>> [t.numpy().tolist() for t in kept_lengths(tf.constant([3, 9, 8]), tf.constant([9, 3, 8]), 7)]
        [[3, 4, 3], [4, 3, 4]]
    """
    first_kept = tf.minimum(first, tf.maximum(budget - second, budget // 2))
    return first_kept, tf.minimum(second, budget - first_kept)


def cut_pair(first, second, budget: int) -> tuple:
    """Ragged token ids of A and B cut to fit `budget` together: A loses its start, B its end.

    The lengths kept are those of :func:`kept_lengths`; the tokens around the junction stay.

    Example:
        >>> first, second = cut_pair(tf.ragged.constant([[5, 6, 7]]), tf.ragged.constant([[8, 9, 10]]), 4)
        >>> first.to_list(), second.to_list()
        ([[6, 7]], [[8, 9]])
    """
    first_length, second_length = first.row_lengths(), second.row_lengths()
    first_kept, second_kept = kept_lengths(first_length, second_length, tf.constant(budget, first_length.dtype))
    first = tf.ragged.boolean_mask(first, tf.ragged.range(first_length) >= (first_length - first_kept)[:, None])
    second = tf.ragged.boolean_mask(second, tf.ragged.range(second_length) < second_kept[:, None])
    return first, second


def pack_pairs(first, second, spec, sequence_length: int) -> dict:
    """``[CLS] A [SEP] B [SEP]`` of ragged token ids, cut to fit: ``token_ids``, ``segment_ids``, ``padding_mask``.

    A and B are cut by :func:`cut_pair`; ``segment_ids`` are 0 on ``[CLS] A [SEP]``, 1 on ``B [SEP]``.

    Example:
        >>> from types import SimpleNamespace
        >>> spec = SimpleNamespace(special_token_ids={"start": 2, "end": 3, "pad": 0})
        >>> out = pack_pairs(tf.ragged.constant([[5, 6]]), tf.ragged.constant([[8]]), spec, 7)
        >>> out["token_ids"].numpy().tolist(), out["segment_ids"].numpy().tolist()
        ([[2, 5, 6, 3, 8, 3, 0]], [[0, 0, 0, 0, 1, 1, 0]])
    """
    ids = spec.special_token_ids
    first, second = cut_pair(first, second, sequence_length - NUM_SPECIAL_TOKENS)
    packer = keras_hub.layers.MultiSegmentPacker(
        sequence_length=sequence_length, start_value=ids["start"], end_value=ids["end"], pad_value=ids["pad"]
    )
    token_ids, segment_ids = packer((first, second))
    lengths = first.row_lengths() + second.row_lengths() + NUM_SPECIAL_TOKENS
    padding_mask = tf.sequence_mask(lengths, sequence_length, tf.int32)
    return {
        "token_ids": tf.cast(token_ids, tf.int32),
        "segment_ids": tf.cast(segment_ids, tf.int32) * padding_mask,
        "padding_mask": padding_mask,
    }


class SentenceOrderPrediction(zoo.Objective):
    """Sentence-order prediction on pairs of consecutive segments.

    Args:
        short_sequence_rate: probability that a document's target length is
            drawn uniformly in ``[2, sequence_length - 3]``.
        documents_per_batch: documents cut into pairs together (the
            examples of a batch are shuffled among themselves).
        loss_weight: weight of this loss in the total.

    Inputs: ``segment_ids`` from the pairs. Labels: int32 ``[batch]``, 1
    where the pair is in order; every example has weight 1. Output: two
    logits per example (swapped, in order).

    Example:
        >>> sorted(SentenceOrderPrediction().requires)
        ['pooled', 'segments']
    """

    name = "sop"
    requires = frozenset({"segments", "pooled"})
    description = "sentence-order prediction (ALBERT): are two consecutive segments swapped?"

    def __init__(self, *, short_sequence_rate: float = 0.1, documents_per_batch: int = 64, loss_weight: float = 1.0):
        super().__init__(loss_weight=loss_weight)
        if not 0 <= short_sequence_rate <= 1:
            raise ConfigError(f"sop: short_sequence_rate must be in [0, 1], got {short_sequence_rate!r}")
        if not (isinstance(documents_per_batch, int) and documents_per_batch >= 1):
            raise ConfigError(f"sop: documents_per_batch must be an integer >= 1, got {documents_per_batch!r}")
        self.short_sequence_rate = float(short_sequence_rate)
        self.documents_per_batch = documents_per_batch

    # -- data half -----------------------------------------------------------

    def structure(self, documents, tokenize, spec, sequence_length, seed):
        """Pairs of consecutive segments, in order or swapped (see the module docstring)."""
        if sequence_length < NUM_SPECIAL_TOKENS + 2:
            raise ConfigError(f"sop needs sequence_length >= 5 for two segments and 3 special tokens, "
                              f"got {sequence_length}")
        base = tf.constant([seed, 0x50F], tf.int64)

        def pairs(index, texts):
            batch_seed = tf.random.experimental.stateless_fold_in(base, index)
            return self._pairs(texts, tokenize, spec, sequence_length, batch_seed)

        batches = documents.batch(self.documents_per_batch).enumerate()
        return batches.map(pairs, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()

    def _pairs(self, texts, tokenize, spec, sequence_length, seed):
        short_seed, target_seed, split_seed, swap_seed, order_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 5))
        sentences = split_sentences(texts)
        tokens = tokenize(tf.strings.strip(sentences.flat_values))
        document = tf.cast(sentences.value_rowids(), tf.int64)
        has_tokens = tokens.row_lengths() > 0
        tokens, document = tf.ragged.boolean_mask(tokens, has_tokens), tf.boolean_mask(document, has_tokens)
        lengths = tokens.row_lengths()

        # Chunks: sentence i of a document goes to chunk (tokens before it) // (the document's target).
        budget = sequence_length - NUM_SPECIAL_TOKENS
        num_documents = tf.shape(texts, out_type=tf.int64)[0]
        short = tf.random.stateless_uniform([num_documents], seed=short_seed) < self.short_sequence_rate
        target = tf.where(short, _uniform_int(target_seed, 2, budget, [num_documents]), budget)
        before = tf.cumsum(lengths, exclusive=True)
        offset = before - tf.gather(tf.math.unsorted_segment_min(before, document, num_documents), document)
        keys, chunk = tf.unique(document * (1 << 32) + offset // tf.gather(target, document), out_idx=tf.int64)
        num_chunks = tf.size(keys, out_type=tf.int64)
        size = tf.math.unsorted_segment_sum(tf.ones_like(chunk), chunk, num_chunks)
        first = tf.math.unsorted_segment_min(tf.range(tf.size(chunk, out_type=tf.int64)), chunk, num_chunks)
        position = tf.range(tf.size(chunk, out_type=tf.int64)) - tf.gather(first, chunk)

        # A is the first k sentences of each chunk of two or more, k uniform in [1, size - 1]; B the rest.
        paired = size >= 2
        split = _uniform_int(split_seed, 1, tf.maximum(size - 1, 1), tf.shape(size, out_type=tf.int64))
        example = tf.cumsum(tf.cast(paired, tf.int64)) - 1
        num_examples = tf.reduce_sum(tf.cast(paired, tf.int64))
        in_pair = tf.gather(paired, chunk)
        in_first = position < tf.gather(split, chunk)

        def part(mask):
            rows = tf.boolean_mask(tf.gather(example, chunk), mask)
            values = tf.ragged.boolean_mask(tokens, mask)
            return tf.RaggedTensor.from_value_rowids(values, rows, nrows=num_examples).merge_dims(1, 2)

        # Cut before swapping, so what is kept is contiguous in the document either way.
        first_part, second_part = cut_pair(part(in_pair & in_first), part(in_pair & ~in_first), budget)
        swap = tf.random.stateless_uniform([num_examples], seed=swap_seed) < 0.5
        both = tf.concat([first_part, second_part], axis=0)
        rows = tf.range(num_examples)
        leading = tf.gather(both, tf.where(swap, rows + num_examples, rows))
        trailing = tf.gather(both, tf.where(swap, rows, rows + num_examples))
        examples = pack_pairs(leading, trailing, spec, sequence_length)
        examples["sop_label"] = tf.cast(~swap, tf.int32)
        order = tf.argsort(tf.random.stateless_uniform([num_examples], seed=order_seed))
        return {key: tf.gather(value, order) for key, value in examples.items()}

    def prepare(self, features, spec, seed):
        """Labels from the structure stage; a row of padding only has weight 0."""
        weights = tf.cast(tf.reduce_any(features["padding_mask"] > 0, axis=1), tf.float32)
        return features, features["sop_label"], weights

    # -- model half --------------------------------------------------------------

    def build_head(self, outputs, inputs, spec):
        return keras.layers.Dense(
            2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="sop_head"
        )(outputs["pooled_output"])

    # -- serving ---------------------------------------------------------------

    def serving_signature(self):
        return {name: tf.TensorSpec([None], tf.string, name=name) for name in ("text", "next_text")}

    def serve(self, inputs, context):
        """``in_order``: probability that ``text`` comes before ``next_text`` (float32 ``[batch]``); ``logits``."""
        features = pack_pairs(context.tokenize(inputs["text"]), context.tokenize(inputs["next_text"]),
                              context.spec, context.sequence_length)
        logits = tf.cast(context.outputs(context.model_inputs(features))[self.name], tf.float32)
        return {"in_order": tf.nn.softmax(logits)[:, 1], "logits": logits}


def _uniform_int(seed, low, high, shape):
    """Integers uniform in ``[low, high]`` (inclusive; `high` may be a tensor of `shape`)."""
    high = tf.broadcast_to(tf.cast(high, tf.int64), shape)
    draw = tf.random.stateless_uniform(shape, seed=seed)
    span = high - low + 1
    return low + tf.minimum(tf.cast(draw * tf.cast(span, tf.float32), tf.int64), span - 1)


@zoo.hookimpl
def zoo_register_objectives(register):
    """Register ``sop``."""
    register(SentenceOrderPrediction)
