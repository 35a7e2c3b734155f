"""Noise functions of the ``denoising`` objective: seeded TensorFlow ops on batches of token ids.

Each function takes int32 ``token_ids`` and ``padding_mask`` ``[batch, length]``
(right-padded), an int32 ``[2]`` seed for stateless random ops, and a
boolean ``candidate`` mask of the positions noise may touch (real,
non-special tokens: the start, end, padding and mask tokens and the
sentinels are never dropped, masked or counted). Shares are of the
candidates of each row. Functions that change lengths cut the result to
``length`` and return the new ``padding_mask``.

Published defaults (see :class:`zoo.objectives.denoising.Denoising`):

- :func:`token_masking`: BERT's 15% of tokens, each replaced by the mask
  token (BART's token masking "follows BERT"; all of them become the mask).
- :func:`token_deletion`: 15% of tokens deleted (BART gives no rate; zoo
  takes BERT's).
- :func:`span_infilling`: BART's text infilling: span lengths drawn from
  Poisson(λ=3) until they cover ``ceil(30%)`` of the tokens (the last one
  cut to fit, as fairseq does), each span replaced by one mask token, a
  zero-length span inserting one.
- :func:`sentence_permutation`: BART's: sentences (ending at ``.``, ``!``,
  ``?`` or the end token) shuffled; the start token stays first. In a
  packed block the sentences of neighbouring documents mix, as the
  documents' end tokens end sentences too.
- :func:`span_corruption`: T5's ``span_corruption``: ``random_spans_noise_mask``
  with noise density 0.15 and mean span length 3; each noise span becomes
  one sentinel in the input, ``<extra_id_0>`` for the first span and so on;
  the target is each span after its sentinel.

Spans are placed as random non-overlapping segments over the candidates
(stars and bars), so every arrangement of the drawn lengths is equally
likely; the lengths are shuffled first, so the cut span lands anywhere.
"""

from __future__ import annotations

import tensorflow as tf

from zoo.errors import ConfigError


def candidates(token_ids, padding_mask, special_ids) -> tf.Tensor:
    """Positions that are real tokens and not special: what noise may touch.

    Example:
        >>> candidates(tf.constant([[2, 7, 3, 8, 0]]), tf.constant([[1, 1, 1, 1, 0]]), (0, 2, 3)).numpy().tolist()
        [[False, True, False, True, False]]
    """
    special = tf.constant(sorted(special_ids), token_ids.dtype)
    is_special = tf.reduce_any(token_ids[..., None] == special, axis=-1)
    return (padding_mask > 0) & ~is_special


def token_masking(token_ids, padding_mask, seed, *, candidate, mask_id: int, rate: float = 0.15):
    """Replace ``round(rate * candidates)`` tokens of each row, drawn uniformly, by `mask_id`.

    Example:
        >>> ids, mask = tf.constant([[2, 5, 6, 7, 8]]), tf.ones([1, 5], tf.int32)
        >>> out, _ = token_masking(ids, mask, tf.constant([1, 2]), candidate=ids > 2, mask_id=4, rate=0.5)
        >>> int(tf.reduce_sum(tf.cast(out == 4, tf.int32)))
        2
    """
    chosen = _choose(candidate, rate, seed)
    return tf.where(chosen, tf.constant(mask_id, token_ids.dtype), token_ids), padding_mask


def token_deletion(token_ids, padding_mask, seed, *, candidate, pad_id: int, rate: float = 0.15):
    """Delete ``round(rate * candidates)`` tokens of each row, drawn uniformly; the rest close up.

    Example:
        >>> ids, mask = tf.constant([[2, 5, 6, 7, 8]]), tf.ones([1, 5], tf.int32)
        >>> out, new_mask = token_deletion(ids, mask, tf.constant([1, 2]), candidate=ids > 2, pad_id=0, rate=0.5)
        >>> new_mask.numpy().tolist(), int(out[0, 0])
        ([[1, 1, 1, 0, 0]], 2)
    """
    chosen = _choose(candidate, rate, seed)
    keep = (padding_mask > 0) & ~chosen
    return edit(token_ids, keep, token_ids, tf.zeros_like(tf.pad(token_ids, [[0, 0], [0, 1]])),
                fill_id=pad_id, pad_id=pad_id)


def span_infilling(token_ids, padding_mask, seed, *, candidate, mask_id: int, pad_id: int,
                   rate: float = 0.3, poisson_lambda: float = 3.0):
    """BART text infilling: Poisson(`poisson_lambda`) spans over ``ceil(rate * candidates)`` tokens, one mask each.

    Example:
        >>> ids = tf.constant([[2] + list(range(5, 25))])
        >>> out, mask = span_infilling(ids, tf.ones_like(ids), tf.constant([3, 4]), candidate=ids > 2,
        ...                            mask_id=4, pad_id=0)
        >>> kept = out.numpy()[0][out.numpy()[0] > 4]
        >>> len(kept), bool(all(kept[1:] > kept[:-1]))  # 20 - ceil(0.3 * 20) tokens stay, in order
        (14, True)
    """
    spans = infilling_spans(candidate, seed, rate=rate, poisson_lambda=poisson_lambda)
    keep = (padding_mask > 0) & (~spans["noise"] | spans["start"])
    replacement = tf.where(spans["start"], tf.constant(mask_id, token_ids.dtype), token_ids)
    return edit(token_ids, keep, replacement, spans["inserts"], fill_id=mask_id, pad_id=pad_id)


def infilling_spans(candidate, seed, *, rate: float = 0.3, poisson_lambda: float = 3.0) -> dict:
    """Where :func:`span_infilling` puts its spans, in sequence positions.

    Returns a dict of ``noise`` (bool ``[batch, length]``: tokens in a
    span), ``start`` (bool: first token of each non-empty span),
    ``inserts`` (int32 ``[batch, length + 1]``: zero-length spans before each
    position, the last column after the sequence) and ``lengths`` (int32
    ``[batch, max_spans]``, each row's span lengths in sequence order, ``-1``
    past its last span).

    Example:
        >>> spans = infilling_spans(tf.ones([1, 100], tf.bool), tf.constant([0, 1]))
        >>> int(tf.reduce_sum(tf.cast(spans["noise"], tf.int32)))
        30
    """
    batch_size, length = tf.shape(candidate)[0], candidate.shape[1] or tf.shape(candidate)[1]
    max_spans = candidate.shape[1] or tf.shape(candidate)[1]
    num_candidates = tf.reduce_sum(tf.cast(candidate, tf.int32), axis=1)
    # ceil, as fairseq's BART; the margin keeps 0.3 * 100 from rounding up to 31.
    num_noise = tf.cast(tf.math.ceil(rate * tf.cast(num_candidates, tf.float32) - 1e-3), tf.int32)
    length_seed, order_seed, place_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    drawn = tf.random.stateless_poisson([batch_size, max_spans], length_seed, lam=poisson_lambda, dtype=tf.int32)
    before = tf.cumsum(drawn, axis=1, exclusive=True)
    used = before < num_noise[:, None]
    lengths = tf.where(used, tf.minimum(drawn, num_noise[:, None] - before), 0)
    # Shuffle each row's used lengths, so the one cut to fit is not always last.
    order = tf.argsort(tf.where(used, tf.random.stateless_uniform(tf.shape(drawn), order_seed), 2.0), axis=1)
    lengths = tf.gather(lengths, order, batch_dims=1)
    num_spans = tf.reduce_sum(tf.cast(used, tf.int32), axis=1)
    return _place_spans(candidate, lengths, num_spans, place_seed, length, max_spans)


def sentence_permutation(token_ids, padding_mask, seed, *, sentence_end_ids, end_id: int):
    """Shuffle the sentences of each row; position 0 (the start token) and padding stay put.

    A sentence ends after a token of `sentence_end_ids` or `end_id`; a row's
    last sentence may be cut off by the block's end.

    Example:
        >>> ids = tf.constant([[2, 5, 9, 6, 9, 7, 9, 0]])
        >>> out, _ = sentence_permutation(ids, tf.cast(ids > 0, tf.int32), tf.constant([0, 3]),
        ...                               sentence_end_ids=(9,), end_id=3)
        >>> sorted(out.numpy()[0, 1:7].reshape(3, 2).tolist())
        [[5, 9], [6, 9], [7, 9]]
    """
    length = tf.shape(token_ids)[1]
    ends = tf.constant(sorted({*sentence_end_ids, end_id}), token_ids.dtype)
    is_end = tf.reduce_any(token_ids[..., None] == ends, axis=-1)
    positions = tf.range(length)[None, :]
    is_end = is_end & (positions > 0)
    sentence = tf.cumsum(tf.cast(is_end, tf.int32), axis=1, exclusive=True)
    keys = tf.gather(tf.random.stateless_uniform(tf.shape(token_ids), seed), sentence, batch_dims=1)
    keys = tf.where(positions == 0, -1.0, tf.where(padding_mask > 0, keys, 2.0))
    order = tf.argsort(keys, axis=1, stable=True)
    return tf.gather(token_ids, order, batch_dims=1), padding_mask


def span_corruption(token_ids, padding_mask, seed, *, candidate, sentinel_ids, pad_id: int,
                    noise_density: float = 0.15, mean_noise_span_length: float = 3.0) -> dict:
    """T5 span corruption: noise spans become sentinels in the input; the target is the spans.

    A span that a special token splits (packed blocks hold document ends)
    counts as two here, each with its sentinel, so input and target
    together give back the original exactly; sentinels past the last one
    reuse it (T5's 100 cover over 1000 tokens).

    Returns a dict of ``token_ids`` and ``padding_mask`` (the input, same
    length) and ``target_ids`` and ``target_mask`` ``[batch,
    max_target_length(length)]``: ``<extra_id_0>`` span 0 ``<extra_id_1>``
    span 1 ..., no end token.

    Example:
        >>> ids = tf.constant([[2] + list(range(10, 30))])
        >>> out = span_corruption(ids, tf.ones_like(ids), tf.constant([0, 1]), candidate=ids > 2,
        ...                       sentinel_ids=(100, 101, 102), pad_id=0)
        >>> target = out["target_ids"].numpy()[0][: int(tf.reduce_sum(out["target_mask"]))]
        >>> int(target[0]), int(sum(target >= 100)), int(sum(target < 100))
        (100, 1, 3)
    """
    length = token_ids.shape[1]
    max_spans = max_noise_spans(length, noise_density, mean_noise_span_length)
    if len(sentinel_ids) < max_spans:
        raise ConfigError(
            f"span_corruption needs {max_spans} sentinels for length {length}, got {len(sentinel_ids)}; "
            "add them with Tokenizer.with_sentinels"
        )
    spans = corruption_spans(candidate, seed, noise_density=noise_density,
                             mean_noise_span_length=mean_noise_span_length)
    sentinels = tf.constant(list(sentinel_ids), token_ids.dtype)

    def sentinel(starts):
        index = tf.maximum(tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1, 0)
        return tf.gather(sentinels, tf.minimum(index, len(sentinel_ids) - 1))

    no_inserts = tf.zeros_like(tf.pad(token_ids, [[0, 0], [0, 1]]))
    real, noisy = padding_mask > 0, spans["noise"]
    previous_noisy = tf.pad(noisy[:, :-1], [[0, 0], [1, 0]])
    # A span split by a special token (a document boundary) gets a sentinel for each part.
    noise_start = noisy & ~previous_noisy
    inputs, input_mask = edit(token_ids, real & (~noisy | noise_start),
                              tf.where(noise_start, sentinel(noise_start), token_ids), no_inserts,
                              fill_id=pad_id, pad_id=pad_id)
    # The target: each run of other tokens that a span follows becomes that span's sentinel.
    noise_later = tf.cumsum(tf.cast(noisy, tf.int32), axis=1, reverse=True) > 0
    first = tf.range(tf.shape(token_ids)[1])[None, :] == 0
    run_start = real & ~noisy & (previous_noisy | first) & noise_later
    targets, target_mask = edit(token_ids, noisy | run_start, tf.where(run_start, sentinel(run_start), token_ids),
                                no_inserts, fill_id=pad_id, pad_id=pad_id)
    width = max_target_length(length, noise_density, mean_noise_span_length)
    return {"token_ids": inputs, "padding_mask": input_mask,
            "target_ids": targets[:, :width], "target_mask": target_mask[:, :width]}


def corruption_spans(candidate, seed, *, noise_density: float = 0.15, mean_noise_span_length: float = 3.0) -> dict:
    """Where :func:`span_corruption` puts its spans: T5's ``random_spans_noise_mask`` over each row's candidates.

    ``n`` candidates give ``round(n * noise_density)`` noise tokens (at least
    1 and at most ``n - 1``, none when ``n < 2``) in
    ``max(1, round(noise / mean_noise_span_length))`` spans; noise and
    non-noise runs are random segmentations, interleaved starting with a
    non-noise run. Returns ``noise``, ``start`` and ``lengths`` as
    :func:`infilling_spans` does (``inserts`` all zero).

    Example:
        >>> spans = corruption_spans(tf.ones([1, 100], tf.bool), tf.constant([0, 1]))
        >>> int(tf.reduce_sum(tf.cast(spans["noise"], tf.int32))), int(tf.reduce_sum(tf.cast(spans["start"], tf.int32)))
        (15, 5)
    """
    length = candidate.shape[1]
    max_spans = max_noise_spans(length, noise_density, mean_noise_span_length)
    n = tf.reduce_sum(tf.cast(candidate, tf.int32), axis=1)
    num_noise = tf.cast(tf.round(tf.cast(n, tf.float32) * noise_density), tf.int32)
    num_noise = tf.where(n < 2, 0, tf.clip_by_value(num_noise, 1, tf.maximum(n - 1, 1)))
    num_spans = tf.cast(tf.round(tf.cast(num_noise, tf.float32) / mean_noise_span_length), tf.int32)
    num_spans = tf.where(num_noise > 0, tf.clip_by_value(num_spans, 1, tf.minimum(num_noise, n - num_noise)), 0)
    noise_seed, gap_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    noise_lengths = _segmentation(num_noise, num_spans, max_spans, length, noise_seed)
    gap_lengths = _segmentation(n - num_noise, num_spans, max_spans, length, gap_seed)
    starts = tf.cumsum(gap_lengths, axis=1) + tf.cumsum(noise_lengths, axis=1, exclusive=True)
    return _spans_at(candidate, starts, noise_lengths, num_spans, length)


def max_noise_spans(length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0) -> int:
    """The most spans :func:`span_corruption` makes in a row of `length` tokens: the sentinels it needs.

    Example:
        >>> max_noise_spans(128), max_noise_spans(512)
        (6, 26)
    """
    noise = max(1, round(length * noise_density))
    return max(1, round(noise / mean_noise_span_length))


def max_target_length(length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0) -> int:
    """The longest target of :func:`span_corruption` for rows of `length` tokens (a sentinel per span).

    A span split by a special token takes one more sentinel; the rare target
    that is longer still is cut to this length.

    Example:
        >>> max_target_length(128)
        25
    """
    return max(1, round(length * noise_density)) + max_noise_spans(length, noise_density, mean_noise_span_length)


def edit(token_ids, keep, replacement, inserts, *, fill_id: int, pad_id: int):
    """Rebuild each row: `inserts` fill tokens before each position, then its `replacement` if `keep`.

    Args:
        token_ids: int ``[batch, length]``; only its shape and dtype are used.
        keep: bool ``[batch, length]``: positions whose token stays.
        replacement: ``[batch, length]``: the token each kept position writes.
        inserts: int ``[batch, length + 1]``: how many `fill_id` tokens go
            before each position (the last column: after the row).
        fill_id: the inserted token.
        pad_id: what fills each row after its new end.

    Returns:
        ``(token_ids, padding_mask)`` ``[batch, length]``, cut at `length`.

    Example:
        >>> ids = tf.constant([[5, 6, 7, 0]])
        >>> out, mask = edit(ids, tf.constant([[True, False, True, False]]), ids, tf.constant([[0, 0, 2, 0, 0]]),
        ...                  fill_id=4, pad_id=0)
        >>> out.numpy().tolist(), mask.numpy().tolist()
        ([[5, 4, 4, 7]], [[1, 1, 1, 1]])
    """
    length = tf.shape(token_ids)[1]
    counts = tf.cast(inserts, tf.int32) + tf.pad(tf.cast(keep, tf.int32), [[0, 0], [0, 1]])
    ends = tf.cumsum(counts, axis=1)
    new_length = tf.minimum(ends[:, -1], length)
    positions = tf.range(length)[None, :]
    out = tf.where(positions < new_length[:, None], tf.constant(fill_id, token_ids.dtype),
                   tf.constant(pad_id, token_ids.dtype))
    target = ends[:, :-1] - 1
    written = keep & (target < length)
    rows = tf.broadcast_to(tf.range(tf.shape(token_ids)[0])[:, None], tf.shape(token_ids))
    indices = tf.boolean_mask(tf.stack([rows, target], axis=-1), written)
    out = tf.tensor_scatter_nd_update(out, indices, tf.boolean_mask(tf.cast(replacement, token_ids.dtype), written))
    return out, tf.cast(positions < new_length[:, None], tf.int32)


# -- span placement ----------------------------------------------------------------


def _choose(candidate, rate, seed):
    """``round(rate * candidates)`` candidates of each row, uniformly without replacement."""
    count = tf.cast(tf.round(rate * tf.reduce_sum(tf.cast(candidate, tf.float32), axis=1)), tf.int32)
    scores = tf.where(candidate, tf.random.stateless_uniform(tf.shape(candidate), seed), -1.0)
    rank = tf.argsort(tf.argsort(-scores, axis=1, stable=True), axis=1)
    return candidate & (rank < count[:, None])


def _sorted_sample(count, population, width: int, k: int, seed):
    """``count`` distinct values of ``range(population)`` per row, uniformly, sorted; ``width`` after them.

    ``count <= min(population, k)`` and ``population <= width``. Returns int32 ``[batch, k]``.
    """
    batch_size = tf.shape(count)[0]
    scores = tf.random.stateless_uniform([batch_size, width], seed)
    scores = tf.where(tf.range(width)[None, :] < population[:, None], scores, -1.0)
    _, picks = tf.math.top_k(scores, k=k)
    picks = tf.where(tf.range(k)[None, :] < count[:, None], picks, width)
    return tf.sort(picks, axis=1)


def _segmentation(num_items, num_segments, max_segments: int, length: int, seed):
    """Split ``num_items`` into ``num_segments`` non-empty runs, uniformly (T5's ``random_segmentation``).

    Returns int32 ``[batch, max_segments]`` run lengths, 0 past ``num_segments``.
    """
    cuts = _sorted_sample(num_segments - 1, tf.maximum(num_items - 1, 0), length, max_segments, seed) + 1
    slot = tf.range(max_segments)[None, :]
    bounds = tf.where(slot < (num_segments - 1)[:, None], cuts, num_items[:, None])
    bounds = tf.concat([tf.zeros_like(bounds[:, :1]), bounds], axis=1)
    lengths = bounds[:, 1:] - bounds[:, :-1]
    return tf.where(slot < num_segments[:, None], lengths, 0)


def _place_spans(candidate, lengths, num_spans, seed, length, max_spans):
    """Put spans of `lengths` (in order) at random non-overlapping places among each row's candidates.

    Stars and bars: the spans and the ``n - sum(lengths)`` other candidates
    are arranged uniformly by choosing the spans' ``num_spans`` slots out of
    ``n - sum(lengths) + num_spans``.
    """
    n = tf.reduce_sum(tf.cast(candidate, tf.int32), axis=1)
    total = tf.reduce_sum(lengths, axis=1)
    slots = _sorted_sample(num_spans, n - total + num_spans, length + max_spans, max_spans, seed)
    starts = slots - tf.range(max_spans)[None, :] + tf.cumsum(lengths, axis=1, exclusive=True)
    return _spans_at(candidate, starts, lengths, num_spans, length)


def _spans_at(candidate, starts, lengths, num_spans, length):
    """Spans starting at candidate indices `starts` (sorted) with `lengths`, as sequence-position masks."""
    batch_size, max_spans = tf.shape(starts)[0], tf.shape(starts)[1]
    used = tf.range(max_spans)[None, :] < num_spans[:, None]
    lengths = tf.where(used, lengths, 0)
    n = tf.reduce_sum(tf.cast(candidate, tf.int32), axis=1)
    rows = tf.broadcast_to(tf.range(batch_size)[:, None], tf.shape(starts))
    starts = tf.where(used, starts, 0)

    def scatter(columns, values, width):
        indices = tf.stack([rows, tf.minimum(columns, width - 1)], axis=-1)
        return tf.scatter_nd(indices, values, [batch_size, width])

    nonempty = tf.cast(lengths > 0, tf.int32)
    # In candidate order: +1 where a span starts, -1 after it ends.
    boundaries = scatter(starts, nonempty, length + 1) - scatter(starts + lengths, nonempty, length + 1)
    compact_noise = tf.cumsum(boundaries, axis=1)[:, :length] > 0
    compact_start = scatter(starts, nonempty, length + 1)[:, :length] > 0
    # Candidate index k sits at sequence position order[k]; rank inverts that.
    order = tf.argsort(tf.where(candidate, 0, 1), axis=1, stable=True)
    rank = tf.argsort(order, axis=1)
    noise = tf.gather(compact_noise, rank, batch_dims=1) & candidate
    start = tf.gather(compact_start, rank, batch_dims=1) & candidate
    # A zero-length span goes before the candidate it precedes, or after the last one.
    last = tf.gather(order, tf.maximum(n - 1, 0), batch_dims=1)
    at = tf.where(starts < n[:, None], tf.gather(order, tf.minimum(starts, length - 1), batch_dims=1),
                  (last + 1)[:, None])
    empty = tf.cast(used & (lengths == 0), tf.int32)
    inserts = scatter(at, empty, length + 1)
    return {"noise": noise, "start": start, "inserts": inserts,
            "lengths": tf.where(used, lengths, -1)}
