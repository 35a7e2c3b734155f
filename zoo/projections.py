"""Projections as 2-D matmuls: attention's without a broadcast batch matmul, all with their fastest gradients.

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

While training, these layers and plain ``Dense`` layers go through
:func:`projection`, a 2-D matmul and bias whose gradients are taken in the
orientation oneDNN runs fastest. TensorFlow's matmul gradient computes the
kernel's gradient as ``inputsᵀ · d_outputs``; where the kernel has more
rows than columns (the second feed-forward matmul, ``[4096, 1024]ᵀ ·
[4096, 256]`` in the BERT above) that product runs at 70–90% of the rate
of its transpose ``d_outputsᵀ · inputs`` (8.3–10.1 ms against 7.3 ms), so
:func:`projection` computes the transpose and flips the small result. The
bias gradient, a sum over rows, is a ones-row matmul: oneDNN runs it at
about twice the rate of TensorFlow's ``Sum`` over the rows of
``[4096, 256]`` (0.5 ms against 1.1 ms), the gradient Keras's bias add
gets where the bias is not a vector (the ``[heads, head_dim]`` biases of
the query, key and value projections).

:func:`flatten_projections` gives each such layer of a model a ``call``
that folds the leading axes into one, multiplies, and unfolds: the same
arithmetic on the same weights, so configs, weights, presets and
SavedModels are unchanged. Only the layers of the model it is given change
(zoo applies it to its tasks' backbones); other models in the process keep
Keras's path. Quantized or LoRA-enabled layers keep their own ``call``.
"""

from __future__ import annotations

import keras
import tensorflow as tf
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
    contracted, kept = _contracted_and_kept(equation, kernel.shape)
    leading = ops.shape(inputs)[:2]
    product = ops.matmul(ops.reshape(inputs, (-1, contracted)), ops.reshape(kernel, (contracted, -1)))
    return ops.reshape(product, (leading[0], leading[1], *kept))


def _contracted_and_kept(equation: str, kernel_shape) -> tuple:
    """The size of the kernel's contracted axes, and its kept axes, for one of :data:`FLAT_EQUATIONS`."""
    if equation not in FLAT_EQUATIONS:
        raise ValueError(f"{equation!r} is not one of {FLAT_EQUATIONS}")
    shape = tuple(kernel_shape)
    if equation == "abcd,cde->abe":
        return shape[0] * shape[1], shape[2:]
    return shape[0], shape[1:]


def projection(inputs, kernel, bias=None):
    """``inputs [m, k] · kernel [k, n] (+ bias [n])``, with the gradients oneDNN runs fastest.

    The values are ``tf.matmul`` and ``tf.nn.bias_add``; the gradient of a
    kernel with more rows than columns is computed transposed, and the
    bias gradient by :func:`column_sums`.

    Example:
        >>> x, kernel, bias = tf.random.normal((6, 4)), tf.random.normal((4, 3)), tf.random.normal((3,))
        >>> with tf.GradientTape() as tape:
        ...     tape.watch(kernel)
        ...     loss = tf.reduce_sum(projection(x, kernel, bias) ** 2)
        >>> tuple(tape.gradient(loss, kernel).shape)
        (4, 3)
    """
    inputs, kernel = tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel)  # reads of variables: tensors
    biases = () if bias is None else (tf.convert_to_tensor(bias),)
    return _product(inputs, kernel, *biases)


@tf.custom_gradient
def _product(inputs, kernel, *biases):
    """``inputs · kernel`` plus the bias in `biases` (none or one), with :func:`projection`'s gradients."""
    def gradient(d_outputs):
        d_biases = tuple(column_sums(d_outputs) for _ in biases)
        return (_input_gradient(d_outputs, kernel), _kernel_gradient(inputs, d_outputs, kernel), *d_biases)

    outputs = tf.matmul(inputs, kernel)
    return (tf.nn.bias_add(outputs, biases[0]) if biases else outputs), gradient


def _input_gradient(d_outputs, kernel):
    return tf.matmul(d_outputs, kernel, transpose_b=True)


def _kernel_gradient(inputs, d_outputs, kernel):
    rows, columns = kernel.shape
    if rows is not None and columns is not None and rows > columns:
        return tf.transpose(tf.matmul(d_outputs, inputs, transpose_a=True))
    return tf.matmul(inputs, d_outputs, transpose_a=True)


def column_sums(matrix):
    """The sum of the rows of 2-D `matrix`, as a ones-row matmul (faster than ``Sum`` over rows on CPU).

    Example:
        >>> column_sums(tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])).numpy().tolist()
        [9.0, 12.0]
    """
    ones = tf.ones((1, tf.shape(matrix)[0]), matrix.dtype)
    return tf.reshape(tf.matmul(ones, matrix), (-1,))


def flatten_projections(model: keras.layers.Layer) -> int:
    """Make every ``EinsumDense`` in `model` with a :data:`FLAT_EQUATIONS` equation, and every plain ``Dense``, compute by 2-D matmuls.

    An ``EinsumDense`` computes by :func:`flat_einsum`, and while training
    by :func:`projection`; a ``Dense`` trains through :func:`projection`
    and infers through Keras's own ``call``. Returns the number of layers
    changed. Idempotent.

    Example:
        >>> layer = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 2, 8), bias_axes="de")
        >>> layer.build((None, 5, 16))
        >>> flatten_projections(layer), flatten_projections(layer)
        (1, 0)
    """
    return (patch_layers(model, "_zoo_flat", _is_flat_einsum, _flat_call)
            + patch_layers(model, "_zoo_flat", _is_plain_dense, _dense_call))


def _is_flat_einsum(layer) -> bool:
    return isinstance(layer, keras.layers.EinsumDense) and layer.equation in FLAT_EQUATIONS


def _is_plain_dense(layer) -> bool:
    return type(layer) is keras.layers.Dense


def keeps_keras_call(layer) -> bool:
    """Whether `layer` (a ``Dense`` or ``EinsumDense``) is quantized or LoRA-enabled, and so computes its own way."""
    return layer.quantization_mode is not None or layer.lora_enabled


def _trained_projection(layer, inputs, leading: tuple, contracted: int, kept: tuple):
    """`layer`'s kernel and bias applied to `inputs` by :func:`projection`, before its activation."""
    kernel = ops.reshape(ops.cast(layer.kernel, inputs.dtype), (contracted, -1))
    bias = None if layer.bias is None else ops.reshape(ops.cast(layer.bias, inputs.dtype), (-1,))
    product = projection(ops.reshape(inputs, (-1, contracted)), kernel, bias)
    return ops.reshape(product, (*leading, *kept))


def _flat_call(layer, einsum_call):
    def call(inputs, training=None):
        if keeps_keras_call(layer):
            return einsum_call(inputs, training=training)
        contracted, kept = _contracted_and_kept(layer.equation, layer.kernel.shape)
        if training and (layer.bias is None or tuple(layer.bias.shape) == kept):
            outputs = _trained_projection(layer, inputs, ops.shape(inputs)[:2], contracted, kept)
        else:
            outputs = flat_einsum(layer.equation, inputs, layer.kernel)
            if layer.bias is not None:
                outputs = ops.add(outputs, layer.bias)
        if layer.activation is not None:
            outputs = layer.activation(outputs)
        return outputs

    return call


def _dense_call(layer, keras_call):
    def call(inputs, training=None):
        if not training or keeps_keras_call(layer):
            return keras_call(inputs, training=training)
        outputs = _trained_projection(layer, inputs, ops.shape(inputs)[:-1], inputs.shape[-1], (layer.units,))
        if layer.activation is not None:
            outputs = layer.activation(outputs)
        return outputs

    return call
