"""Bias and GELU of a ``Dense`` layer as one XLA-compiled pass, forward and backward, while training.

keras-hub's BERT and GPT-2 feed-forward blocks end their first ``Dense``
in ``gelu_approximate``. Keras computes the bias and the GELU as about
ten separate elementwise TensorFlow ops, and their gradient as about as
many again, each a pass over the ``[batch × sequence, intermediate_dim]``
activation. In a profile of the ``small`` BERT masked LM (float32,
sequence 128, batch 32) that was 6.5% of the op time, third after the
matmuls and dropout. Here the bias, the GELU and its derivative
are each one XLA-compiled function (:func:`bias_gelu`, a
``tf.custom_gradient`` of two ``jit_compile`` functions), computed in
float32 whatever the layer's compute dtype; the matmul stays on
TensorFlow's own kernel (oneDNN on CPU), which XLA's CPU backend does not
beat at these shapes. On a ``[4096, 1024]`` activation forward and
backward take 7.2 ms instead of 20.5 ms on the 2-core machine of
``benchmarks/RESULTS.md``.

:func:`fuse_gelu` gives each such layer of a model a ``call`` that takes
this path while training and Keras's own path otherwise, so inference,
exported SavedModels, configs, weights and presets are those of Keras.
Only the layers of the model it is given change (zoo applies it to its
tasks' backbones). Quantized or LoRA-enabled layers keep their own
``call``.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from zoo.layer_patches import patch_layers

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INVERSE_SQRT_2 = 1.0 / math.sqrt(2.0)
_INVERSE_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _value_and_slope(z, approximate: bool):
    """GELU of float32 `z` and its derivative."""
    if approximate:
        inner = _SQRT_2_OVER_PI * (z + 0.044715 * z * z * z)
        t = tf.tanh(inner)
        slope = 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * z * z)
        return 0.5 * z * (1.0 + t), slope
    cdf = 0.5 * (1.0 + tf.math.erf(z * _INVERSE_SQRT_2))
    return z * cdf, cdf + z * _INVERSE_SQRT_2PI * tf.exp(-0.5 * z * z)


def _compiled(approximate: bool):
    @tf.function(jit_compile=True, autograph=False)
    def forward(x, bias):
        z = tf.cast(x, tf.float32) + tf.cast(bias, tf.float32)
        return tf.cast(_value_and_slope(z, approximate)[0], x.dtype)

    @tf.function(jit_compile=True, autograph=False)
    def backward(x, bias, d_y):
        z = tf.cast(x, tf.float32) + tf.cast(bias, tf.float32)
        d_z = tf.cast(d_y, tf.float32) * _value_and_slope(z, approximate)[1]
        return tf.cast(d_z, x.dtype), tf.cast(tf.reduce_sum(d_z, axis=0), bias.dtype)

    return forward, backward


_COMPILED = {approximate: _compiled(approximate) for approximate in (False, True)}


def bias_gelu(x, bias, approximate: bool = True):
    """``gelu(x + bias)`` for a 2-D `x` and 1-D `bias`, with its gradient, each as one XLA-compiled pass.

    Example:
        >>> x, bias = tf.random.normal((4, 3)), tf.random.normal((3,))
        >>> expected = keras.activations.gelu(x + bias, approximate=True)
        >>> bool(tf.reduce_max(tf.abs(bias_gelu(x, bias) - expected)) < 1e-5)
        True
    """
    forward, backward = _COMPILED[bool(approximate)]
    x, bias = tf.convert_to_tensor(x), tf.convert_to_tensor(bias)  # reads of variables: plain tensors

    @tf.custom_gradient
    def fused(x, bias):
        return forward(x, bias), lambda d_y: backward(x, bias, d_y)

    return fused(x, bias)


def _gelu_form(activation):
    """``True`` / ``False`` for the approximate / exact GELU functions Keras and keras-hub use, else ``None``."""
    if activation is keras.activations.gelu:
        return False
    name = getattr(activation, "__name__", "")
    module = getattr(activation, "__module__", "") or ""
    if name == "gelu_approximate" and module.startswith("keras_hub"):
        return True
    return None


def fuse_gelu(model: keras.layers.Layer) -> int:
    """Make every biased ``Dense`` in `model` that ends in GELU train through :func:`bias_gelu`.

    Returns the number of layers changed. Idempotent.

    Example:
        >>> layer = keras.layers.Dense(8, activation="gelu")
        >>> layer.build((None, 4))
        >>> fuse_gelu(layer), fuse_gelu(layer)
        (1, 0)
    """
    return patch_layers(model, "_zoo_fused_gelu", _is_biased_gelu_dense, _fused_call)


def _is_biased_gelu_dense(layer) -> bool:
    return type(layer) is keras.layers.Dense and layer.use_bias and _gelu_form(layer.activation) is not None


def _fused_call(layer, keras_call):
    approximate = _gelu_form(layer.activation)
    def call(inputs, training=None):
        if not training or layer.quantization_mode is not None or layer.lora_enabled:
            return keras_call(inputs, training=training)
        leading = ops.shape(inputs)[:-1]
        product = ops.matmul(ops.reshape(inputs, (-1, inputs.shape[-1])), layer.kernel)
        outputs = bias_gelu(product, ops.cast(layer.bias, product.dtype), approximate)
        return ops.reshape(outputs, (*leading, layer.units))

    return call
