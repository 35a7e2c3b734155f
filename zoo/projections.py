"""Attention projections run as one 2-D matmul instead of a broadcast batch matmul.

keras-hub's attention layers project with ``keras.layers.EinsumDense``
(``abc,cde->abde`` for query, key and value, ``abcd,cde->abe`` for the
output). Keras's TensorFlow backend turns these einsums into ``tf.matmul``
of a 3-D activation with a 2-D kernel, a ``BatchMatMulV2`` that broadcasts
the kernel over the batch; on CPU, oneDNN runs it, and its gradients, at
about two thirds of the rate of the same product as a plain 2-D ``MatMul``.
In a profile of the ``small`` BERT masked LM (float32, sequence 128, batch
32), batched matmuls took 25% of the op time, most of it these projections;
flattened, the batched matmuls left (attention scores and context) take 7%.
The right depth for this is Keras's TensorFlow einsum; until it folds the
axes itself, zoo does it on its own models.

:func:`flatten_projections` gives each such layer of a model a ``call``
that folds the leading axes into one, multiplies, and unfolds: the same
arithmetic on the same weights, so configs, weights, presets and
SavedModels are unchanged. Only the layers of the model it is given change
(zoo applies it to its tasks' backbones); other models in the process keep
Keras's path. Quantized or LoRA-enabled layers keep their own ``call``.
"""

from __future__ import annotations

import keras
from keras import ops

from zoo.layer_patches import patch_layers

#: EinsumDense equations that are a 2-D matmul over the folded leading axes ``a``, ``b``.
FLAT_EQUATIONS = ("abc,cd->abd", "abc,cde->abde", "abcd,cde->abe")


def flat_einsum(equation: str, inputs, kernel):
    """``ops.einsum(equation, inputs, kernel)`` for one of :data:`FLAT_EQUATIONS`, as a 2-D matmul.

    Example:
        >>> x, kernel = keras.random.normal((2, 3, 4)), keras.random.normal((4, 5, 6))
        >>> expected = ops.einsum("abc,cde->abde", x, kernel)
        >>> bool(ops.all(ops.abs(flat_einsum("abc,cde->abde", x, kernel) - expected) < 1e-5))
        True
    """
    if equation not in FLAT_EQUATIONS:
        raise ValueError(f"{equation!r} is not one of {FLAT_EQUATIONS}")
    shape = tuple(kernel.shape)
    contracted = shape[0] * shape[1] if equation == "abcd,cde->abe" else shape[0]
    kept = shape[2:] if equation == "abcd,cde->abe" else shape[1:]
    leading = ops.shape(inputs)[:2]
    product = ops.matmul(ops.reshape(inputs, (-1, contracted)), ops.reshape(kernel, (contracted, -1)))
    return ops.reshape(product, (leading[0], leading[1], *kept))


def flatten_projections(model: keras.layers.Layer) -> int:
    """Make every ``EinsumDense`` in `model` with a :data:`FLAT_EQUATIONS` equation compute by :func:`flat_einsum`.

    Returns the number of layers changed. Idempotent.

    Example:
        >>> layer = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 2, 8), bias_axes="de")
        >>> layer.build((None, 5, 16))
        >>> flatten_projections(layer), flatten_projections(layer)
        (1, 0)
    """
    return patch_layers(model, "_zoo_flat", _is_flat_einsum, _flat_call)


def _is_flat_einsum(layer) -> bool:
    return isinstance(layer, keras.layers.EinsumDense) and layer.equation in FLAT_EQUATIONS


def _flat_call(layer, einsum_call):
    def call(inputs, training=None):
        if layer.quantization_mode is not None or layer.lora_enabled:
            return einsum_call(inputs, training=training)
        outputs = flat_einsum(layer.equation, inputs, layer.kernel)
        if layer.bias is not None:
            outputs = ops.add(outputs, layer.bias)
        if layer.activation is not None:
            outputs = layer.activation(outputs)
        return outputs

    return call
