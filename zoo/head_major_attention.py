"""Attention scores and context as ``tf.matmul`` of head-major operands while training.

Keras's ``MultiHeadAttention`` computes the scores and the context with
two ``einsum`` calls on ``[batch, positions, heads, head_dim]`` tensors
(``aecd,abcd->acbe`` and ``acbe,aecd->abcd``). TensorFlow turns each into
transposes around a batch matmul, and in a profile of the ``small`` BERT
masked LM (float32, sequence 128, batch 32) the scores einsum transposed
its ``[batch, heads, query, key]`` result, the largest tensor of the
layer, once more after the product, forward and backward. Transposing the
operands to ``[batch, heads, positions, head_dim]`` first gives the scores
and the context in the layout they are used in, with the same products
and the same results; end to end, the BERT row trains 3% faster.

Self-attention (the same tensor as query and value, no key) goes one step
further: :func:`project_heads` computes the query, key and value
projections as one ``[hidden, 3 × hidden]`` matmul and one transpose
straight into head-major layout, the query already scaled by
``1 / √head_dim`` (folded into its kernel and bias). The three 256-wide
products of that BERT run at 72–77% of the machine's float32 peak; the
joined 768-wide one at 90–95%, 15.5 ms instead of 20 ms a layer forward
and backward.

:func:`use_head_major_attention` gives each ``keras.layers.MultiHeadAttention``
of a model (keras-hub's BERT and GPT-2 attention among them) a
``_compute_attention`` that takes the head-major path while training with
dropout, and a ``call`` that also joins the projections of self-attention,
both with Keras's own masked softmax and the layer's own dropout layer.
Where that dropout is zoo's hashed one, in a process without GPU or TPU,
the scores, softmax, dropout and context may instead run as XLA-compiled
functions (:mod:`zoo.compiled_attention`), for the shapes where those
were measured clearly faster here; the dropout masks are the same.
Inference, attention without dropout (Keras's fused
``dot_product_attention``), causal masks Keras builds itself (keras-hub
passes its masks in ``attention_mask``), Keras masks on the inputs,
returned scores, caches, gated or sliding-window attention, other
attention axes, quantized or LoRA projections, configs, weights and
SavedModels are Keras's.
"""

from __future__ import annotations

from typing import Callable, Optional

import keras
import tensorflow as tf

from zoo.compiled_attention import attention_kernel, compiled_attention
from zoo.layer_patches import patch_layers
from zoo.precision import has_accelerator
from zoo.projections import keeps_keras_call, projection

HEAD_MAJOR = [0, 2, 1, 3]  # [batch, positions, heads, dim] <-> [batch, heads, positions, dim]


def attend(query, key, value, softmax: Callable, dropout: Optional[Callable] = None):
    """Dot-product attention of head-major ``[batch, heads, positions, head_dim]`` tensors, query already scaled.

    Example:
        >>> query = key = value = tf.random.normal((2, 5, 3, 4))  # [batch, positions, heads, head_dim]
        >>> head_major = [tf.transpose(tensor, HEAD_MAJOR) for tensor in (query * 0.5, key, value)]
        >>> context = tf.transpose(attend(*head_major, lambda scores: tf.nn.softmax(scores)), HEAD_MAJOR)
        >>> scores = tf.einsum("aecd,abcd->acbe", key, query * 0.5)  # Keras's equations
        >>> reference = tf.einsum("acbe,aecd->abcd", tf.nn.softmax(scores), value)
        >>> bool(tf.reduce_max(tf.abs(context - reference)) < 1e-5)
        True
    """
    probabilities = softmax(tf.matmul(query, key, transpose_b=True))
    if dropout is not None:
        probabilities = dropout(probabilities)
    return tf.matmul(probabilities, value)


def project_heads(inputs, kernels: list, biases: Optional[list]):
    """`inputs` ``[batch, positions, width]`` through each ``[width, heads, head_dim]`` kernel (and bias), in one matmul.

    Returns one head-major ``[batch, heads, positions, head_dim]`` tensor
    per kernel. All kernels have the same shape; `biases` are all
    ``[heads, head_dim]``, or ``None``.

    Example:
        >>> inputs = tf.random.normal((2, 5, 8))
        >>> kernels = [tf.random.normal((8, 2, 4)) for _ in range(3)]
        >>> query, key, value = project_heads(inputs, kernels, None)
        >>> reference = tf.transpose(tf.einsum("abc,cde->abde", inputs, kernels[1]), HEAD_MAJOR)
        >>> key.shape, bool(tf.reduce_max(tf.abs(key - reference)) < 1e-5)
        (TensorShape([2, 2, 5, 4]), True)
    """
    width, heads, head_dim = kernels[0].shape
    kernel = tf.concat([tf.reshape(kernel, (width, heads * head_dim)) for kernel in kernels], axis=1)
    bias = None if biases is None else tf.concat([tf.reshape(bias, (-1,)) for bias in biases], axis=0)
    shape = tf.shape(inputs)
    projected = projection(tf.reshape(inputs, (-1, width)), kernel, bias)
    return _split_heads(tf.reshape(projected, (shape[0], shape[1], len(kernels), heads, head_dim)))


@tf.custom_gradient
def _split_heads(projected):
    """``[batch, positions, parts, heads, head_dim]`` as `parts` head-major tensors, with one transpose each way.

    The parts are slices of one transposed tensor; their gradient is the
    transpose of their stack (TensorFlow's own gradient of the slices
    would add a zero-padded tensor of the whole size per part).
    """
    parts = tf.transpose(projected, [2, 0, 3, 1, 4])

    def gradient(*d_parts):
        d_parts = [tf.zeros_like(parts[0]) if d is None else d for d in d_parts]
        return tf.transpose(tf.stack(d_parts), [1, 3, 0, 2, 4])

    return tuple(parts[index] for index in range(projected.shape[2])), gradient


def use_head_major_attention(model: keras.layers.Layer) -> int:
    """Make every ``MultiHeadAttention`` in `model` train through head-major matmuls, self-attention with joined projections.

    Returns the number of layers changed. Idempotent.

    Example:
        >>> layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.1)
        >>> use_head_major_attention(layer), use_head_major_attention(layer)
        (1, 0)
    """
    return patch_layers(model, "_zoo_head_major", _is_attention, _install)


#: What the fast path reads of Keras's layer when it is made (and, after ``build``, its dense and dropout layers).
_KERAS_INTERNALS = ("_compute_attention", "_masked_softmax", "_dropout", "_inverse_sqrt_key_dim", "_attention_axes")
_BUILT_INTERNALS = ("_dropout_layer", "_query_dense", "_key_dense", "_value_dense", "_output_dense")


def _is_attention(layer) -> bool:
    return isinstance(layer, keras.layers.MultiHeadAttention) and all(hasattr(layer, name) for name in _KERAS_INTERNALS)


def _install(layer, keras_call):
    layer._compute_attention = _head_major_compute_attention(layer, layer._compute_attention)
    return _self_attention_call(layer, keras_call)


def _trains_head_major(layer, training) -> bool:
    """Whether `layer`'s attention takes the head-major path in this call (Keras's own path otherwise)."""
    return (bool(training) and layer._dropout > 0 and tuple(layer._attention_axes) == (1,)
            and all(hasattr(layer, name) for name in _BUILT_INTERNALS))


def _head_major_compute_attention(layer, keras_compute_attention):
    def compute_attention(query, key, value, attention_mask=None, training=None, return_attention_scores=False,
                          use_causal_mask=False):
        if return_attention_scores or use_causal_mask or len(query.shape) != 4 or not _trains_head_major(layer, training):
            return keras_compute_attention(
                query, key, value, attention_mask=attention_mask, training=training,
                return_attention_scores=return_attention_scores, use_causal_mask=use_causal_mask,
            )
        query = tf.transpose(query * tf.cast(layer._inverse_sqrt_key_dim, query.dtype), HEAD_MAJOR)
        context = _attend(layer, query, tf.transpose(key, HEAD_MAJOR), tf.transpose(value, HEAD_MAJOR),
                          attention_mask, training)
        return tf.transpose(context, HEAD_MAJOR), None

    return compute_attention


def _self_attention_call(layer, keras_call):
    def call(query, value, key=None, attention_mask=None, training=None, **options):
        if not _joins_projections(layer, query, value, key, training, options):
            return keras_call(query, value, key=key, attention_mask=attention_mask, training=training, **options)
        dense = (layer._query_dense, layer._key_dense, layer._value_dense)
        scale = tf.cast(layer._inverse_sqrt_key_dim, query.dtype)
        kernels = [tf.cast(d.kernel, query.dtype) for d in dense]
        kernels[0] = kernels[0] * scale
        biases = None
        if dense[0].bias is not None:
            biases = [tf.cast(d.bias, query.dtype) for d in dense]
            biases[0] = biases[0] * scale
        projected_query, projected_key, projected_value = project_heads(query, kernels, biases)
        context = _attend(layer, projected_query, projected_key, projected_value, attention_mask, training)
        return layer._output_dense(tf.transpose(context, HEAD_MAJOR))

    return call


def _attend(layer, query, key, value, attention_mask, training):
    """`layer`'s attention of head-major projections (query scaled), on the kernel measured faster for its shape.

    :func:`zoo.compiled_attention.compiled_attention` where it computes the
    layer's own softmax and dropout and was measured faster here,
    :func:`attend` with the layer's softmax and dropout layers otherwise.
    """
    if _compilable(layer):
        mask = None if attention_mask is None else tf.convert_to_tensor(attention_mask)
        if mask is not None:
            mask = mask if mask.dtype == tf.bool else mask > tf.cast(0.5, mask.dtype)  # as Keras's softmax reads it
            for _ in range(len(query.shape) - len(mask.shape)):
                mask = tf.expand_dims(mask, -3)  # as Keras expands it: [batch, query, key] -> [batch, 1, query, key]
        dropout = layer._dropout_layer
        mask_shape = None if mask is None else tuple(mask.shape)
        if attention_kernel(query.shape, key.shape[-2], query.dtype, mask_shape, dropout.rate) == "xla":
            return compiled_attention(query, key, value, mask, dropout.rate, dropout.seed_generator.next())
    return attend(
        query, key, value,
        softmax=lambda scores: layer._masked_softmax(scores, attention_mask),
        dropout=lambda probabilities: layer._dropout_layer(probabilities, training=training),
    )


def _compilable(layer) -> bool:
    """Whether :func:`zoo.compiled_attention.compiled_attention` computes exactly `layer`'s softmax and dropout.

    That is Keras's masked softmax (not a subclass's own) over the key axis
    and zoo's hashed dropout, in a process without GPU or TPU (where zoo
    compiles the whole step with XLA).
    """
    softmax, dropout = getattr(layer, "_softmax", None), layer._dropout_layer
    axis = getattr(softmax, "axis", None)
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    keras_softmax = type(layer)._masked_softmax is keras.layers.MultiHeadAttention._masked_softmax
    return (keras_softmax and type(softmax) is keras.layers.Softmax and axes in ((-1,), (3,))
            and getattr(dropout, "_zoo_hashed_dropout", False) and dropout.noise_shape is None
            and 0.0 < dropout.rate < 1.0 and not has_accelerator())


def _joins_projections(layer, query, value, key, training, options) -> bool:
    """Whether `layer` may project this call's query, key and value in one matmul (Keras's ``call`` otherwise).

    Self-attention only, with no option set beyond Keras's defaults (Keras
    masks, returned scores, causal masks, caches), no gate or sliding
    window, and three plain, like-shaped projections.
    """
    if query is not value or key is not None or len(query.shape) != 3:
        return False
    if any(option is not None and option is not False for option in options.values()):
        return False
    if getattr(query, "_keras_mask", None) is not None or getattr(layer, "_use_gate", False):
        return False
    if getattr(layer, "_sliding_window", None) is not None or not _trains_head_major(layer, training):
        return False
    dense = (layer._query_dense, layer._key_dense, layer._value_dense)
    if not all(type(d) is keras.layers.EinsumDense and d.equation == "abc,cde->abde"
               and d.activation in (None, keras.activations.linear)
               and not keeps_keras_call(d) for d in dense):
        return False
    shapes = {tuple(d.kernel.shape) for d in dense}
    biases = {None if d.bias is None else tuple(d.bias.shape) for d in dense}
    return len(shapes) == 1 and len(biases) == 1 and (None in biases or biases == {next(iter(shapes))[1:]})
