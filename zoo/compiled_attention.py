"""Head-major attention, masked softmax and dropout included, as one XLA-compiled function forward and one backward.

zoo's head-major attention (:mod:`zoo.head_major_attention`) computes a
layer's scores and context with TensorFlow's ``BatchMatMulV2`` and its
masked softmax and dropout with Keras's layers. In a profile of the
``small`` BERT masked LM (float32, sequence 128, batch 32, 4 heads of 64)
on the 2-core Zen 3 machine of ``benchmarks/RESULTS.md``, its batch
matmuls took 15% of the step's op time, at about 30% of the machine's
float32 matmul peak, and the softmax's selects, reductions and products
another 4%. XLA's batch matmuls at these shapes took 0.55–0.8 of the
time of TensorFlow's; compiled together with the softmax and the
dropout, a layer's attention, forward and backward, took 23 ms against
30 ms.

:func:`compiled_attention` computes it so: the forward function returns
the context and keeps the probabilities and the keep-mask for the
backward one. The dropout mask is :func:`zoo.hashed_dropout.keep_mask`
of the seed given, so with the seed of the layer's (hashed) dropout it
drops exactly what that layer would. The masked softmax is Keras's
(``keras.layers.Softmax`` with a mask: masked scores set to ``-1e9``,
masked probabilities to zero), computed in float32 whatever the inputs'
dtype.

Which kernel is faster depends on the processor (on the Intel machine of
2026-12-04 XLA's float32 matmuls were slower than oneDNN's), so
:func:`attention_kernel` times both, forward and backward, once per
process for each shape (:mod:`zoo.measured_kernels`), and
:mod:`zoo.head_major_attention` takes the compiled path only where it
was clearly faster. End to end on the Zen 3 machine, with the compiled
path, BERT's masked-LM step took 0.92 of its time and GPT's causal-LM
step 0.95 (one-process A/Bs, same weights and dropout masks).
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import keras
import tensorflow as tf

from zoo.hashed_dropout import hashed_dropout, keep_mask
from zoo.measured_kernels import MeasuredChoice, median_seconds, timed_shape

#: The kernels of a layer's attention: TensorFlow's ops (batch matmuls, Keras's softmax, hashed dropout), or XLA.
KERNELS = ("ops", "xla")

_MASKED_SCORE = -1e9  # Keras's softmax sets masked scores to this before normalising


def _probabilities(scores, mask):
    """Keras's masked softmax of `scores` over the last axis, in float32."""
    scores = tf.cast(scores, tf.float32)
    if mask is None:
        return tf.nn.softmax(scores)
    probabilities = tf.nn.softmax(tf.where(mask, scores, _MASKED_SCORE))
    return tf.where(mask, probabilities, 0.0)


@functools.lru_cache(maxsize=None)
def _compiled(rate: float, masked: bool):
    """The XLA-compiled forward (context, probabilities, keep-mask) and backward passes at dropout `rate`."""
    scale = 1.0 / (1.0 - rate)

    @tf.function(jit_compile=True, autograph=False)
    def forward(query, key, value, mask, seed):
        probabilities = _probabilities(tf.matmul(query, key, transpose_b=True), mask if masked else None)
        keep = keep_mask(tf.shape(probabilities), seed, rate)
        dropped = tf.cast(tf.where(keep, probabilities * scale, 0.0), value.dtype)
        return tf.matmul(dropped, value), probabilities, keep

    @tf.function(jit_compile=True, autograph=False)
    def backward(query, key, value, probabilities, keep, d_context):
        dtype = value.dtype
        dropped = tf.cast(tf.where(keep, probabilities * scale, 0.0), dtype)
        d_value = tf.matmul(dropped, d_context, transpose_a=True)
        d_dropped = tf.cast(tf.matmul(d_context, value, transpose_b=True), tf.float32)
        d_probabilities = tf.where(keep, d_dropped * scale, 0.0)
        d_scores = probabilities * (d_probabilities - tf.reduce_sum(d_probabilities * probabilities, -1, keepdims=True))
        d_scores = tf.cast(d_scores, dtype)
        return tf.matmul(d_scores, key), tf.matmul(d_scores, query, transpose_a=True), d_value

    return forward, backward


def compiled_attention(query, key, value, mask, rate: float, seed):
    """Dropped-out masked-softmax attention of head-major ``[batch, heads, positions, head_dim]`` tensors.

    The query is already scaled. `mask` is ``None`` or a boolean tensor
    broadcastable to the ``[batch, heads, query, key]`` scores (``True``
    where a query may attend); `rate` in ``(0, 1)``; `seed` an integer pair
    for :func:`zoo.hashed_dropout.keep_mask`. Gradients flow to query,
    key and value.

    Example:
        >>> query = key = value = tf.random.normal((2, 3, 5, 4))
        >>> mask = tf.linalg.band_part(tf.ones((5, 5), tf.bool), -1, 0)  # causal
        >>> context = compiled_attention(query, key, value, mask, 0.1, tf.constant([1, 2], tf.int64))
        >>> context.shape
        TensorShape([2, 3, 5, 4])
    """
    rate = float(rate)
    if not 0.0 < rate < 1.0:
        raise ValueError(f"dropout rate must be in (0, 1), got {rate}")
    forward, backward = _compiled(rate, mask is not None)
    seed = tf.convert_to_tensor(seed)

    @tf.custom_gradient
    def attended(query, key, value):
        context, probabilities, keep = forward(query, key, value, mask, seed)
        return context, lambda d_context: backward(query, key, value, probabilities, keep, d_context)

    return attended(tf.convert_to_tensor(query), tf.convert_to_tensor(key), tf.convert_to_tensor(value))


_choice = MeasuredChoice(*KERNELS)


def attention_kernel(query_shape, key_positions: int, dtype, mask_shape: Optional[tuple], rate: float) -> str:
    """The kernel of :data:`KERNELS` that trains this attention faster here, forward and backward, measured once.

    `query_shape` is the head-major ``[batch, heads, positions, head_dim]``
    (an axis unknown while tracing counted as
    :data:`zoo.measured_kernels.UNKNOWN_AXIS_SIZE`); `mask_shape` is the
    shape of the boolean mask (``None`` for none). Attention under
    :data:`zoo.measured_kernels.MEASURED_FLOPS` returns ``"ops"`` untimed.

    Example:
        >>> attention_kernel((2, 4, 16, 8), 16, "float32", (2, 1, 16, 16), 0.1)
        'ops'
    """
    query_shape = timed_shape(query_shape)
    mask_shape = None if mask_shape is None else timed_shape(mask_shape)
    key = (query_shape, int(key_positions), tf.as_dtype(dtype).name, mask_shape, float(rate))
    flops = 12.0 * math.prod(query_shape) * key_positions  # six products of 2·batch·heads·query·key·head_dim
    return _choice.choose(key, flops, lambda: _median_seconds(*key))


def measured_choices() -> list:
    """Each attention shape timed in this process: its shapes, dtype, rate, median seconds and kernel.

    Example:
        >>> isinstance(measured_choices(), list)
        True
    """
    return [
        {"query_shape": list(query_shape), "key_positions": key_positions, "dtype": dtype,
         "mask_shape": None if mask_shape is None else list(mask_shape), "rate": rate, **choice}
        for (query_shape, key_positions, dtype, mask_shape, rate), choice in _choice.measured()
    ]


def _ops_attention(query, key, value, mask, rate: float, seed):
    """The attention zoo computes with TensorFlow's ops: batch matmuls, Keras's masked softmax, hashed dropout."""
    softmax = keras.layers.Softmax(axis=-1, dtype=query.dtype.name)
    probabilities = softmax(tf.matmul(query, key, transpose_b=True), mask=mask)
    return tf.matmul(hashed_dropout(probabilities, rate, seed), value)


_ATTENTION = {"ops": _ops_attention, "xla": compiled_attention}


def _median_seconds(query_shape: tuple, key_positions: int, dtype: str, mask_shape: Optional[tuple],
                    rate: float) -> dict:
    """Median seconds of each kernel's attention, forward and backward, on random operands of this shape."""
    batch, heads, _, head_dim = query_shape
    query = tf.cast(tf.random.stateless_normal(query_shape, seed=(1, 2)), dtype)
    key, value = (tf.cast(tf.random.stateless_normal((batch, heads, key_positions, head_dim), seed=(3, seed)), dtype)
                  for seed in (4, 5))
    d_context = tf.cast(tf.random.stateless_normal(query_shape, seed=(6, 7)), dtype)
    mask = None if mask_shape is None else tf.random.stateless_uniform(mask_shape, seed=(8, 9)) < 0.9
    seed = tf.constant([10, 11], tf.int64)

    def trained(attention):
        def step(query, key, value, d_context):  # traced by median_seconds: symbolic gradients, no tape to record
            context = attention(query, key, value, mask, rate, seed)
            return [context, *tf.gradients(context, [query, key, value], grad_ys=d_context)]

        return step

    return median_seconds({name: trained(attention) for name, attention in _ATTENTION.items()},
                          query, key, value, d_context)
