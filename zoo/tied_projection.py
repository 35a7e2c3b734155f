"""The tied output projection, ``logits = inputs · embeddingsᵀ``, with its forward matmul on the kernel measured faster.

A language model's output head multiplies ``[positions, hidden_dim]``
activations by the transposed ``[vocabulary_size, hidden_dim]`` token
embedding (``keras.layers.ReversibleEmbedding(..., reverse=True)``): a
product with a short inner axis and a wide output. On the 2-core Zen 3
machine of ``benchmarks/RESULTS.md`` TensorFlow's ``MatMul`` (oneDNN, and
Eigen alike) runs it at about half the matmul peak, 233 ms for GPT's
``[4096, 256] × [256, 8192]`` in float32, and no faster on two threads
than on one, while the same product as an XLA-compiled function takes
131 ms (for BERT's 608 masked positions, 45 ms against 21). Its two
gradients, ``d_logits · embeddings`` and ``d_logitsᵀ · inputs``, have a
long inner axis and run near the peak on ``MatMul``, as fast as or faster
than XLA's. Which kernel wins the forward product depends on the
processor (on the Intel machine of 2026-12-04 XLA's float32 matmuls were
slower than oneDNN's) and may depend on the dtype (XLA's bfloat16
products have not been timed against oneDNN's on AMX), so it is measured
rather than assumed.

:func:`forward_kernel` times both kernels, once per process for each
shape and dtype, on random operands of that shape, and keeps XLA only
where it takes at most :data:`zoo.measured_kernels.CLEAR_MARGIN` of
``MatMul``'s time, so that timing noise does not flip the choice between
runs (:mod:`zoo.measured_kernels`). Products under
:data:`zoo.measured_kernels.MEASURED_FLOPS` (every test-sized model) are
not timed: they keep ``MatMul``. :func:`tied_logits` computes the product
on the chosen kernel and its gradients on ``MatMul``, the embedding's
directly in its own ``[vocabulary_size, hidden_dim]`` orientation.

:func:`measure_tied_projections` gives each tied ``ReversibleEmbedding``
of a model a ``call`` that takes this path while training in a process
that sees no GPU or TPU (where zoo compiles the whole step with XLA
anyway), and Keras's otherwise: inference, exported SavedModels,
configs, weights and presets are Keras's. End to end, on the Zen 3
machine, GPT's causal-LM step (``small``, sequence 128, batch 32) takes
0.94 of its time; BERT's masked-LM step, whose head predicts 608
positions, is unchanged within noise.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from zoo.layer_patches import patch_layers
from zoo.measured_kernels import MeasuredChoice, median_seconds, timed_shape
from zoo.precision import has_accelerator

#: The kernels of the forward product: TensorFlow's ``MatMul`` op, or an XLA-compiled matmul.
KERNELS = ("matmul", "xla")

_choice = MeasuredChoice(*KERNELS)


def _matmul_product(inputs, embeddings):
    return tf.matmul(inputs, embeddings, transpose_b=True)


_PRODUCTS = {"matmul": _matmul_product,
             "xla": tf.function(_matmul_product, jit_compile=True, autograph=False)}


def tied_logits(inputs, embeddings, kernel: str = "matmul"):
    """``inputs [rows, hidden_dim] · embeddings [vocabulary_size, hidden_dim]ᵀ``, the forward product on `kernel`.

    `kernel` is one of :data:`KERNELS`; the gradients run on ``MatMul``.

    Example:
        >>> inputs, embeddings = tf.random.normal((6, 4)), tf.random.normal((10, 4))
        >>> expected = tf.matmul(inputs, embeddings, transpose_b=True)
        >>> bool(tf.reduce_max(tf.abs(tied_logits(inputs, embeddings, "xla") - expected)) < 1e-5)
        True
    """
    if kernel not in _PRODUCTS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    product = _PRODUCTS[kernel]

    @tf.custom_gradient
    def logits_of(inputs, embeddings):
        def gradient(d_logits):
            return tf.matmul(d_logits, embeddings), tf.matmul(d_logits, inputs, transpose_a=True)

        return product(inputs, embeddings), gradient

    return logits_of(tf.convert_to_tensor(inputs), tf.convert_to_tensor(embeddings))


def forward_kernel(rows: int, hidden_dim: int, vocabulary_size: int, dtype: str = "float32") -> str:
    """The kernel of :data:`KERNELS` that runs the forward product of this shape faster here, measured once.

    Measured on the current default device; products under
    :data:`zoo.measured_kernels.MEASURED_FLOPS` return ``"matmul"`` without
    being timed.

    Example:
        >>> forward_kernel(64, 32, 1000)
        'matmul'
    """
    key = (int(rows), int(hidden_dim), int(vocabulary_size), str(dtype))
    return _choice.choose(key, 2.0 * rows * hidden_dim * vocabulary_size, lambda: _median_seconds(*key))


def measured_choices() -> list:
    """Each shape measured in this process: its rows, hidden_dim, vocabulary_size, dtype, median seconds and kernel.

    Example:
        >>> isinstance(measured_choices(), list)
        True
    """
    return [
        {"rows": rows, "hidden_dim": hidden, "vocabulary_size": vocabulary, "dtype": dtype, **choice}
        for (rows, hidden, vocabulary, dtype), choice in _choice.measured()
    ]


def _median_seconds(rows: int, hidden_dim: int, vocabulary_size: int, dtype: str) -> dict:
    """Median seconds of each kernel's forward product on random operands of this shape."""
    inputs = tf.cast(tf.random.stateless_normal((rows, hidden_dim), seed=(1, 2)), dtype)
    embeddings = tf.cast(tf.random.stateless_normal((vocabulary_size, hidden_dim), seed=(3, 4)), dtype)
    return median_seconds(_PRODUCTS, inputs, embeddings, calls=3)


def measure_tied_projections(model: keras.layers.Layer) -> int:
    """Make every tied ``ReversibleEmbedding`` in `model` train its reverse call through :func:`tied_logits`.

    The forward kernel is :func:`forward_kernel`'s choice for the traced
    shape (an axis unknown while tracing, the batch, counted as
    :data:`zoo.measured_kernels.UNKNOWN_AXIS_SIZE`), in a process without
    GPU or TPU. Layers with a soft cap, their own reverse dtype or
    quantization keep Keras's path. Returns the number of layers changed.
    Idempotent.

    Example:
        >>> layer = keras.layers.ReversibleEmbedding(100, 16)
        >>> layer.build((None, 5))
        >>> measure_tied_projections(layer), measure_tied_projections(layer)
        (1, 0)
    """
    return patch_layers(model, "_zoo_measured_tied_projection", _is_tied, _measured_call)


def _is_tied(layer) -> bool:
    return (isinstance(layer, keras.layers.ReversibleEmbedding) and layer.tie_weights
            and layer.logit_soft_cap is None and layer.reverse_dtype is None)


def _measured_call(layer, keras_call):
    def call(inputs, reverse=False, training=None):
        if not (reverse and training) or layer.quantization_mode is not None or has_accelerator():
            return keras_call(inputs, reverse=reverse)
        hidden_dim = inputs.shape[-1]
        embeddings = ops.cast(layer.embeddings, layer.compute_dtype)
        flat = ops.reshape(ops.cast(inputs, layer.compute_dtype), (-1, hidden_dim))
        rows = math.prod(timed_shape(inputs.shape[:-1]))
        kernel = forward_kernel(rows, hidden_dim, layer.input_dim, layer.compute_dtype)
        logits = tied_logits(flat, embeddings, kernel)
        return ops.reshape(logits, (*ops.shape(inputs)[:-1], layer.input_dim))

    return call
