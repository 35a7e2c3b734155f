"""Packing documents into full fixed-length blocks (the default structure stage).

Documents are joined into one token stream, each followed by the ``end``
token (``[SEP]`` or ``<|endoftext|>``), and the stream is cut into blocks
that each start with the ``start`` token (``[CLS]`` or ``<|endoftext|>``).
A block therefore spans document boundaries, marked by separator tokens,
as in RoBERTa's FULL-SENTENCES and GPT-2 training; only the very last block
of a pass over the data can hold padding.
"""

from __future__ import annotations

import tensorflow as tf


def pack_token_stream(chunks: tf.data.Dataset, sequence_length: int, *, start_id: int, pad_id: int) -> tf.data.Dataset:
    """Cut a dataset of 1-D token chunks into blocks of `sequence_length`.

    Tokens left over at the end of one chunk continue into the next; the
    final partial block is padded and its ``padding_mask`` marks the padding.

    Args:
        chunks: dataset of 1-D int32 tensors (any lengths), in stream order.
        sequence_length: length of every block, including its start token.
        start_id: token put at position 0 of every block.
        pad_id: token that fills the last block.

    Returns:
        A dataset of ``{"token_ids": [L], "padding_mask": [L]}`` int32 blocks.

    Example:
        >>> chunks = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([[5, 6, 7], [8, 9]]))
        >>> blocks = pack_token_stream(chunks, 3, start_id=1, pad_id=0)
        >>> [b["token_ids"].numpy().tolist() for b in blocks]
        [[1, 5, 6], [1, 7, 8], [1, 9, 0]]
    """
    body = sequence_length - 1
    if body < 1:
        raise ValueError(f"sequence_length must be at least 2, got {sequence_length}")
    flagged = chunks.map(lambda chunk: (tf.cast(chunk, tf.int32), False)).concatenate(
        tf.data.Dataset.from_tensors((tf.zeros([0], tf.int32), True))
    )

    def cut(leftover, element):
        chunk, is_last = element
        stream = tf.concat([leftover, chunk], axis=0)
        num_full = tf.size(stream) // body
        rest = stream[num_full * body :]
        # On the last element, pad the remainder into one final block.
        num_pad = tf.where(is_last & (tf.size(rest) > 0), body - tf.size(rest), 0)
        padded = tf.concat([stream, tf.fill([num_pad], pad_id)], axis=0)
        num_blocks = num_full + tf.cast(num_pad > 0, tf.int32)
        bodies = tf.reshape(padded[: num_blocks * body], [num_blocks, body])
        body_mask = tf.reshape(
            tf.sequence_mask(tf.size(stream), num_blocks * body, dtype=tf.int32), [num_blocks, body]
        )
        starts = tf.fill([num_blocks, 1], start_id)
        blocks = {
            "token_ids": tf.concat([starts, bodies], axis=1),
            "padding_mask": tf.concat([tf.ones_like(starts), body_mask], axis=1),
        }
        return rest, blocks

    return flagged.scan(tf.zeros([0], tf.int32), cut).unbatch()
