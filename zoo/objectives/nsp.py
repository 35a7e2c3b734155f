"""Next-sentence prediction (``nsp``), as in BERT (Devlin et al., 2019).

Examples are sentence pairs ``[CLS] A [SEP] B [SEP]`` with ``segment_ids``
0 on ``[CLS] A [SEP]`` and 1 on ``B [SEP]`` (0 on padding). A binary head on
``pooled_output`` predicts whether B is the text that follows A.

Label convention: ``nsp_label`` is 1 when B really follows A ("is next")
and 0 when B comes from another document, so the head's sigmoid is the
probability that B follows A. (BERT's ``next_sentence_labels`` and Hugging
Face's use the opposite, 0 for "is next".)

The structure stage, all TensorFlow ops, mirrors BERT's
``create_pretraining_data.py`` with these choices:

- Segments are sentences (:func:`zoo.text.segments.split_sentences`): a document is cut after ``.``, ``!`` or ``?``
  (and any closing quotes or brackets) followed by whitespace and a
  character that is not a lowercase letter, and at blank lines. tf-text's
  ``StateBasedSentenceBreaker`` is not used: it also cuts inside ``e.g.``
  and ``setup.py``, which code documentation is full of. Segments without
  tokens are dropped.
- Documents are read in buffers of ``documents_per_buffer`` consecutive
  documents of the (shuffled) stream; negatives pair across a buffer.
- Per document, the target length is ``max_num_tokens = sequence_length - 3``
  or, with probability ``short_sequence_rate`` (0.1), uniform in
  ``[2, max_num_tokens]``.
- A document's segments are grouped into chunks of about the target length:
  a chunk ends with the segment that carries the running token count past a
  multiple of the target. (BERT restarts the count after each chunk and
  puts the unused segments of a negative back; this rule needs no loop.)
- Each chunk of at least two segments gives one example: A is its first
  ``k`` segments, ``k`` uniform in ``[1, segments - 1]``. With probability
  0.5, B is the rest of the chunk (label 1); otherwise B is taken from a
  different document of the buffer, drawn uniformly: whole segments from a
  uniformly drawn segment on, until B reaches ``target - len(A)`` tokens or
  the document ends (label 0). Unlike BERT, a chunk of one segment gives no
  example (BERT makes it a negative, which pushes the positive rate below
  one half); single-sentence documents still serve as the B of negatives.
- A pair longer than ``max_num_tokens`` is truncated from the longer side,
  one token at a time, each from the front or the back with probability
  1/2 (on a tie, from B).
- The examples of a buffer are shuffled. A buffer with fewer than two
  documents that have segments (a last buffer of one document) gives none.

Each example also carries ``nsp_first_document`` and ``nsp_second_document``
(int64): the positions, in the stream the stage read, of the documents A
and B come from, for statistics and debugging. Randomness is stateless and
seeded by ``(seed, buffer index)``: a pass over the same documents in the
same order gives the same pairs, and reshuffled documents give new ones.
The number of pairs therefore varies a little from pass to pass; Keras
counts the steps of the first epoch, and later epochs end at that count or
when the data does, whichever comes first.

Inference: ``Task.predict`` on a list of strings scores each text as A
with an empty B, which says little; pairs are scored by the ``nsp`` serving
endpoint (inputs ``text`` and ``next_text``, see
:meth:`NextSentencePrediction.serve`), in-process through
:func:`zoo.export.serving_functions` or in an exported SavedModel.
"""

from __future__ import annotations

import keras
import keras_hub
import tensorflow as tf

from zoo.errors import ConfigError, CorpusError
from zoo.hookspecs import hookimpl
from zoo.objective import Objective
from zoo.text.segments import split_sentences

#: Tokens of ``[CLS]``, ``[SEP]``, ``[SEP]`` in every pair.
NUM_SPECIAL_TOKENS = 3

SERVING_SIGNATURE = {
    "text": tf.TensorSpec([None], tf.string, name="text"),
    "next_text": tf.TensorSpec([None], tf.string, name="next_text"),
}


def truncated_lengths(first, second, max_num_tokens):
    """Lengths of A and B after removing tokens from the longer one until both fit.

    The closed form of BERT's loop (ties remove from B).

    Example:
        >>> [t.numpy().tolist() for t in truncated_lengths(tf.constant([3, 9, 8]), tf.constant([9, 3, 8]), 7)]
        [[3, 4, 4], [4, 3, 3]]
    """
    excess = tf.maximum(first + second - max_num_tokens, 0)
    longer, shorter = tf.maximum(first, second), tf.minimum(first, second)
    only_longer = longer - excess >= shorter
    first_kept = tf.where(
        only_longer,
        tf.where(first > second, first - excess, first),
        (max_num_tokens + 1) // 2,
    )
    second_kept = tf.where(only_longer, first + second - excess - first_kept, max_num_tokens // 2)
    return first_kept, second_kept


def _uniform_int(seed, low, high):
    """One integer uniform in ``[low, high]`` (inclusive, elementwise) per element of `low`."""
    span = high - low + 1
    draw = tf.random.stateless_uniform(tf.shape(low), seed=seed)
    return low + tf.minimum(tf.cast(draw * tf.cast(span, tf.float32), low.dtype), span - 1)


class NextSentencePrediction(Objective):
    """Next-sentence prediction on sentence pairs.

    Args:
        short_sequence_rate: probability that a document's target length is
            drawn uniformly in ``[2, sequence_length - 3]`` (BERT's
            ``short_seq_prob``).
        documents_per_buffer: documents paired with each other: negatives
            take B from another document of the same buffer.
        loss_weight: weight of this loss in the total.

    Inputs: ``segment_ids`` from the pairs. Labels: float32 ``[batch, 1]``,
    1 where B follows A; every example has weight 1 (a row of padding
    only, 0). Output: one logit per example, ``[batch, 1]``.

    Example:
        >>> sorted(NextSentencePrediction().requires)
        ['pooled', 'segments']
    """

    name = "nsp"
    requires = frozenset({"segments", "pooled"})
    description = "next-sentence prediction (BERT): does the second segment follow the first? 50% yes"

    def __init__(self, *, short_sequence_rate: float = 0.1, documents_per_buffer: int = 256,
                 loss_weight: float = 1.0):
        super().__init__(loss_weight=loss_weight)
        if not 0 <= short_sequence_rate <= 1:
            raise ConfigError(f"nsp: short_sequence_rate must be in [0, 1], got {short_sequence_rate!r}")
        if not (isinstance(documents_per_buffer, int) and documents_per_buffer >= 2):
            raise ConfigError(
                f"nsp: documents_per_buffer must be an int >= 2 (negatives need another document), "
                f"got {documents_per_buffer!r}"
            )
        self.short_sequence_rate = float(short_sequence_rate)
        self.documents_per_buffer = documents_per_buffer

    # -- data half ---------------------------------------------------------------

    def structure(self, documents, tokenize, spec, sequence_length, seed):
        """Sentence pairs from buffers of documents (see the module docstring for the rules)."""
        if sequence_length < NUM_SPECIAL_TOKENS + 2:
            raise ConfigError(
                f"nsp needs sequence_length >= {NUM_SPECIAL_TOKENS + 2} for [CLS] A [SEP] B [SEP] with a token "
                f"in each of A and B, got {sequence_length}; build with a longer sequence_length"
            )

        def pairs(buffer_index, element):
            positions, texts = element
            buffer_seed = tf.stack([tf.constant(seed, tf.int64), buffer_index])
            return self._pairs(texts, positions, tokenize, spec.special_token_ids, sequence_length, buffer_seed)

        buffers = documents.enumerate().batch(self.documents_per_buffer).enumerate()
        examples = buffers.map(pairs, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
        if tf.executing_eagerly():
            _check_corpus(documents, examples)
        return examples

    def _pairs(self, texts, positions, tokenize, special_token_ids, sequence_length, seed):
        """The examples of one buffer of documents, as tensors with a leading example axis."""
        max_num_tokens = sequence_length - NUM_SPECIAL_TOKENS
        seeds = iter(tf.unstack(tf.random.experimental.stateless_split(seed, 9)))

        segments = split_sentences(texts)
        tokens = tokenize(segments.flat_values)
        nonempty = tokens.row_lengths() > 0
        segment_document = tf.boolean_mask(tf.cast(segments.value_rowids(), tf.int32), nonempty)
        flat = tf.cast(tokens.flat_values, tf.int32)
        segment_start = tf.boolean_mask(tf.cast(tokens.row_starts(), tf.int32), nonempty)
        segment_end = tf.boolean_mask(tf.cast(tokens.row_limits(), tf.int32), nonempty)
        num_documents = tf.shape(texts)[0]
        segments_per_document = tf.math.bincount(segment_document, minlength=num_documents,
                                                 maxlength=num_documents)
        first_segment = tf.cumsum(segments_per_document, exclusive=True)

        # Target length per document, then chunks of about that many tokens.
        short = tf.random.stateless_uniform([num_documents], seed=next(seeds)) < self.short_sequence_rate
        target = tf.where(
            short,
            _uniform_int(next(seeds), tf.fill([num_documents], 2), tf.fill([num_documents], max_num_tokens)),
            max_num_tokens,
        )
        document_start = tf.gather(tf.concat([segment_start, [tf.size(flat)]], 0), first_segment)
        offset = segment_start - tf.gather(document_start, segment_document)
        chunk_in_document = offset // tf.gather(target, segment_document)
        changes = (segment_document[1:] != segment_document[:-1]) | (chunk_in_document[1:] != chunk_in_document[:-1])
        starts_chunk = tf.concat([[True], changes], axis=0)[: tf.size(segment_document)]
        chunk_id = tf.cumsum(tf.cast(starts_chunk, tf.int32)) - 1
        segment_index = tf.range(tf.size(segment_document))
        chunk_first = tf.math.segment_min(segment_index, chunk_id)
        chunk_size = tf.math.segment_max(segment_index, chunk_id) - chunk_first + 1

        # Chunks of two or more segments, in buffers with another document to draw negatives from.
        sources = tf.where(segments_per_document > 0)[:, 0]
        num_sources = tf.size(sources, out_type=tf.int32)
        keep = (chunk_size >= 2) & (num_sources >= 2)
        chunk_first = tf.boolean_mask(chunk_first, keep)
        chunk_size = tf.boolean_mask(chunk_size, keep)
        document = tf.gather(segment_document, chunk_first)

        num_first = _uniform_int(next(seeds), tf.ones_like(chunk_size), chunk_size - 1)
        is_next = tf.random.stateless_uniform(tf.shape(chunk_first), seed=next(seeds)) < 0.5
        first_start = tf.gather(segment_start, chunk_first)
        first_end = tf.gather(segment_end, chunk_first + num_first - 1)
        target = tf.gather(target, document)

        # Negatives: another source document (uniformly), whole segments from a uniform one on.
        rank = tf.searchsorted(tf.cast(sources, tf.int32), document)
        other = _uniform_int(next(seeds), tf.zeros_like(rank), tf.maximum(num_sources - 2, 0))
        other = tf.cast(tf.gather(sources, tf.where(other < rank, other, other + 1)), tf.int32)
        other_first = tf.gather(first_segment, other)
        other_last = other_first + tf.gather(segments_per_document, other) - 1
        random_start = _uniform_int(next(seeds), other_first, other_last)
        random_begin = tf.gather(segment_start, random_start)
        wanted = tf.maximum(target - (first_end - first_start), 1)
        random_last = tf.minimum(tf.searchsorted(segment_end, random_begin + wanted, side="left"), other_last)

        second_start = tf.where(is_next, first_end, random_begin)
        second_end = tf.where(is_next, tf.gather(segment_end, chunk_first + chunk_size - 1),
                              tf.gather(segment_end, random_last))

        # Truncate the longer side, each removed token from the front or the back.
        first_length, second_length = first_end - first_start, second_end - second_start
        first_kept, second_kept = truncated_lengths(first_length, second_length, max_num_tokens)
        first_start += self._front_cut(first_length - first_kept, next(seeds))
        second_start += self._front_cut(second_length - second_kept, next(seeds))

        # [CLS] A [SEP] B [SEP] and padding, position by position.
        position = tf.range(sequence_length)[None, :]
        first_kept, second_kept = first_kept[:, None], second_kept[:, None]
        length = first_kept + second_kept + NUM_SPECIAL_TOKENS
        in_first = (position >= 1) & (position <= first_kept)
        in_second = (position >= first_kept + 2) & (position < length - 1)
        source = tf.where(in_first, first_start[:, None] + position - 1,
                          second_start[:, None] + position - first_kept - 2)
        text = tf.gather(flat, tf.clip_by_value(source, 0, tf.maximum(tf.size(flat) - 1, 0)))
        is_end = (position == first_kept + 1) | (position == length - 1)
        marks = tf.where(is_end, special_token_ids["end"],
                         tf.where(position == 0, special_token_ids["start"], special_token_ids["pad"]))
        examples = {
            "token_ids": tf.where(in_first | in_second, text, marks),
            "padding_mask": tf.cast(position < length, tf.int32),
            "segment_ids": tf.cast((position >= first_kept + 2) & (position < length), tf.int32),
            "nsp_label": tf.cast(is_next, tf.int32),
            "nsp_first_document": tf.gather(positions, document),
            "nsp_second_document": tf.gather(positions, tf.where(is_next, document, other)),
        }
        order = tf.argsort(tf.random.stateless_uniform(tf.shape(is_next), seed=next(seeds)))
        return {key: tf.gather(value, order) for key, value in examples.items()}

    @staticmethod
    def _front_cut(removed, seed):
        """How many of `removed` tokens come off the front: each does with probability 1/2."""
        return tf.random.stateless_binomial(
            tf.shape(removed), seed=seed, counts=tf.cast(removed, tf.float32), probs=0.5, output_dtype=tf.int32
        )

    def prepare(self, features, spec, seed):
        if "nsp_label" not in features:
            raise ConfigError(
                "nsp: the batches have no nsp_label; nsp makes its examples from documents in its structure "
                "stage, so train it on raw text (a list or dataset of strings)"
            )
        labels = tf.cast(features["nsp_label"], tf.float32)[:, None]
        is_example = tf.reduce_any(features["padding_mask"] > 0, axis=1)  # rows of padding only weigh nothing
        return features, labels, tf.cast(is_example, tf.float32)

    # -- model half --------------------------------------------------------------

    def build_head(self, outputs, inputs, spec):
        head = keras.layers.Dense(
            1, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), dtype="float32", name="nsp_head"
        )
        return head(outputs["pooled_output"])

    def loss(self):
        return keras.losses.BinaryCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight", name="nsp_loss"
        )

    def metrics(self):
        return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)]

    # -- serving -----------------------------------------------------------------

    def serving_signature(self):
        """Two batches of strings: ``text`` (A) and ``next_text`` (B)."""
        return SERVING_SIGNATURE

    def serve(self, inputs, context):
        """Is-next: the probability that each ``next_text`` follows its ``text``.

        Pairs are packed as in training, ``[CLS] text [SEP] next_text [SEP]``,
        cut round-robin from the back to fit (keras-hub's
        ``MultiSegmentPacker``). Returns ``probability`` (float32
        ``[batch]``) and ``is_next`` (int32, 1 where it is above 1/2).
        """
        spec, length = context.spec, context.sequence_length
        tf.debugging.assert_equal(
            tf.size(inputs["text"]), tf.size(inputs["next_text"]),
            message="nsp: give one next_text per text (the two batches differ in length)",
        )
        first, second = context.tokenize(inputs["text"]), context.tokenize(inputs["next_text"])
        packer = keras_hub.layers.MultiSegmentPacker(
            sequence_length=length,
            start_value=spec.special_token_ids["start"],
            end_value=spec.special_token_ids["end"],
            pad_value=spec.special_token_ids["pad"],
            truncate="round_robin",
        )
        token_ids, segment_ids = packer((first, second))
        kept = tf.minimum(first.row_lengths() + second.row_lengths(), length - NUM_SPECIAL_TOKENS)
        features = {
            "token_ids": tf.cast(token_ids, tf.int32),
            "segment_ids": tf.cast(segment_ids, tf.int32),
            "padding_mask": tf.sequence_mask(tf.cast(kept, tf.int32) + NUM_SPECIAL_TOKENS, length, dtype=tf.int32),
        }
        logits = tf.cast(context.outputs(context.model_inputs(features))[self.name], tf.float32)[:, 0]
        probability = tf.sigmoid(logits)
        return {"probability": probability, "is_next": tf.cast(probability > 0.5, tf.int32)}


def _check_corpus(documents, examples) -> None:
    """Raise :class:`CorpusError` when the documents give no pair at all, saying why."""
    if any(True for _ in examples.take(1)):
        return
    if sum(1 for _ in documents.take(2)) < 2:
        raise CorpusError(
            "nsp needs at least two documents: a negative pair takes its second segment from another "
            "document, and this corpus has one; pass more documents (one per string)"
        )
    raise CorpusError(
        "nsp found no document with two segments: it pairs consecutive sentences of a document, and every "
        "document here is a single sentence; pass longer documents, or train with mlm alone"
    )


@hookimpl
def zoo_register_objectives(register):
    register(NextSentencePrediction)
