"""Dropout whose mask is a keyed integer hash of each element's index, XLA-compiled, while training.

Keras's TensorFlow dropout (``tf.nn.experimental.stateless_dropout``)
draws one float32 from TensorFlow's Philox generator per element, which
on CPU runs as a scalar loop: about 3 ns an element on the 2-core machine
of ``benchmarks/RESULTS.md``. A ``small`` BERT masked LM step (sequence
128, batch 32) drops out about 17 M elements (the attention probabilities
and three activations of each layer, and the embeddings), so dropout was
the largest op after the matmuls in its profile, about 75 ms of an
850 ms float32 step.

:func:`hashed_dropout` draws the same Bernoulli masks from a counter-based
hash instead: element ``i`` of a call seeded ``seed`` is kept when
``h(h(i ⊕ k₀) + k₁ + ⌊i / 2³²⌋·φ) ≥ rate·2³²``, where ``h`` is the
``lowbias32`` integer finalizer (two xor-shift-multiply rounds, an
invertible mix with near-ideal avalanche) and ``k₀``, ``k₁`` are hashed
from all 64 bits of the two seed words, so every call of a layer (Keras's
``SeedGenerator`` steps its second word) gets fresh keys for both rounds.
It is a few vectorised integer ops per element in one XLA-compiled pass,
which also applies the mask and the ``1 / (1 - rate)`` scale; the gradient
is one more pass over the saved keep-mask. On the 17 M elements of a BERT
step, forward and backward take about 19 ms instead of 77 ms. The keep rate
is exact to 2⁻³², and ``tests/test_hashed_dropout.py`` checks the masks'
rate, their independence across neighbouring elements, calls and layers,
and determinism under ``keras.utils.set_random_seed``; the streams differ
from Keras's, so a run is reproducible against itself, not against Keras.

:func:`use_hashed_dropout` gives each plain ``keras.layers.Dropout`` of a
model a ``call`` that takes this path while training, seeded from the
layer's own ``SeedGenerator``; inference (an identity), exported
SavedModels, configs and weights are Keras's. Layers with a
``noise_shape`` keep Keras's path. Only the layers of the model it is
given change (zoo applies it to its tasks' backbones).
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf

from zoo.layer_patches import patch_layers

_PHI = 0x9E3779B9  # 2³² / golden ratio: spreads the high counter word and separates the two keys


def _u32(value: int):
    return tf.constant(value, tf.uint32)


def _lowbias32(x):
    """The ``lowbias32`` finalizer of 32-bit `x` (Wellons's hash prospector): invertible, near-ideal avalanche."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(16))) * _u32(0x7FEB352D)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(15))) * _u32(0x846CA68B)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(16)))


def _keys(seed):
    """Two 32-bit round keys hashed from all four 32-bit words of the ``int64[2]`` `seed`."""
    words = tf.bitcast(tf.cast(seed, tf.int64), tf.uint32)  # [2, 2]
    k0 = _lowbias32(tf.bitwise.bitwise_xor(words[0, 0], _u32(_PHI)))
    for word in (words[0, 1], words[1, 0], words[1, 1]):
        k0 = _lowbias32(tf.bitwise.bitwise_xor(k0, word))
    return k0, _lowbias32(tf.bitwise.bitwise_xor(k0, _u32(_PHI)))


def keep_mask(shape, seed, rate: float):
    """The boolean keep-mask of `shape` for `seed`: each element kept with probability ``1 - rate``.

    :func:`hashed_dropout` keeps exactly these elements of a tensor of that
    shape, given the same seed and rate.

    Example:
        >>> keep = keep_mask([4000], tf.constant([7, 0], tf.int64), 0.25)
        >>> 0.7 < float(tf.reduce_mean(tf.cast(keep, tf.float32))) < 0.8
        True
    """
    k0, k1 = _keys(seed)
    index = tf.range(tf.reduce_prod(tf.cast(shape, tf.int64)), dtype=tf.int64)
    low = tf.cast(tf.bitwise.bitwise_and(index, 0xFFFFFFFF), tf.uint32)
    high = tf.cast(tf.bitwise.right_shift(index, 32), tf.uint32)
    bits = _lowbias32(_lowbias32(tf.bitwise.bitwise_xor(low, k0)) + k1 + high * _u32(_PHI))
    threshold = min(int(round(rate * 2**32)), 2**32 - 1)
    return tf.reshape(bits >= _u32(threshold), shape)


@functools.lru_cache(maxsize=None)
def _compiled(rate: float):
    """The XLA-compiled forward (outputs and keep-mask) and backward passes of dropout at `rate`."""
    scale = 1.0 / (1.0 - rate)

    @tf.function(jit_compile=True, autograph=False)
    def forward(inputs, seed):
        keep = keep_mask(tf.shape(inputs), seed, rate)
        return tf.where(keep, inputs * tf.cast(scale, inputs.dtype), tf.zeros_like(inputs)), keep

    @tf.function(jit_compile=True, autograph=False)
    def backward(d_outputs, keep):
        return tf.where(keep, d_outputs * tf.cast(scale, d_outputs.dtype), tf.zeros_like(d_outputs))

    return forward, backward


def hashed_dropout(inputs, rate: float, seed):
    """`inputs` with each element zeroed with probability `rate` and the rest scaled by ``1 / (1 - rate)``.

    `seed` is an integer pair (a ``keras.random.SeedGenerator``'s ``next()``):
    the same seed gives the same mask. The gradient uses the same mask.

    Example:
        >>> outputs = hashed_dropout(tf.ones((1000,)), 0.25, tf.constant([7, 0], tf.int64))
        >>> sorted({round(float(value), 4) for value in outputs.numpy()})
        [0.0, 1.3333]
        >>> 0.2 < float(tf.reduce_mean(tf.cast(outputs == 0, tf.float32))) < 0.3
        True
    """
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    inputs = tf.convert_to_tensor(inputs)
    if rate == 0.0:
        return inputs
    forward, backward = _compiled(rate)
    seed = tf.convert_to_tensor(seed)

    @tf.custom_gradient
    def dropped(inputs):
        outputs, keep = forward(inputs, seed)
        return outputs, lambda d_outputs: backward(d_outputs, keep)

    return dropped(inputs)


def use_hashed_dropout(model: keras.layers.Layer) -> int:
    """Make every plain ``keras.layers.Dropout`` in `model` train through :func:`hashed_dropout`.

    Returns the number of layers changed. Idempotent.

    Example:
        >>> layer = keras.layers.Dropout(0.1)
        >>> use_hashed_dropout(layer), use_hashed_dropout(layer)
        (1, 0)
    """
    return patch_layers(model, "_zoo_hashed_dropout", lambda layer: type(layer) is keras.layers.Dropout, _hashed_call)


def _hashed_call(layer, keras_call):
    def call(inputs, training=False):
        if not training or layer.rate <= 0 or layer.noise_shape is not None:
            return keras_call(inputs, training=training)
        return hashed_dropout(inputs, layer.rate, layer.seed_generator.next())

    return call
