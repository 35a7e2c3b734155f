"""The matmul ceiling of a transformer training step: the MFU it would reach running nothing but its matmuls.

Model FLOPs (:mod:`benchmarks.flops`) are all matmul FLOPs. Timing each of
those matmuls alone, at the model's own shapes and compute dtype, with the
kernels TensorFlow uses on this machine, gives the least time a step can
take while it still computes them. The step's model FLOPs over that time,
over the measured peak, is the highest MFU the step could show if every
other op (normalisation, activations, dropout, softmax, transposes, the
optimizer) took no time at all. It is the yardstick for the MFU column:
the gap between the two is what the rest of the step costs; the gap
between the ceiling and 100% is what the matmul kernels lose at these
shapes against the large square product of the peak.

Each forward matmul ``[m, k] × [k, n]`` of a training step comes with its
two gradients, ``[m, n] × [n, k]ᵀ`` (with respect to the input) and
``[m, k]ᵀ × [m, n]`` (with respect to the weight, or the other operand),
timed as TensorFlow's matmul gradient runs them (``transpose_b``,
``transpose_a``). The products follow :func:`benchmarks.flops.transformer_flops`:
per layer the query, key, value and output projections and the two
feed-forward matmuls over the step's useful tokens, the attention scores
and their use on the values for each sequence and head, and the output
head (at the predictions for a masked LM, at every token for a causal LM).
"""

from __future__ import annotations

import math
import statistics
import time

import tensorflow as tf


def transformer_products(*, tokens: int, predictions: int, head: str, num_layers: int, num_heads: int,
                         hidden_dim: int, intermediate_dim: int, vocabulary_size: int,
                         sequence_length: int) -> list:
    """``(name, count, (batch, m, k, n))`` for each forward matmul of a training step over `tokens` tokens.

    Example:
        >>> products = transformer_products(tokens=256, predictions=40, head="mlm", num_layers=2, num_heads=4,
        ...                                 hidden_dim=64, intermediate_dim=256, vocabulary_size=1000,
        ...                                 sequence_length=128)
        >>> [(name, count) for name, count, _ in products][:3]
        [('projection', 8), ('feedforward_in', 2), ('feedforward_out', 2)]
        >>> products[3]
        ('attention_scores', 2, (8, 128, 16, 128))
    """
    L, H, I, V, S = num_layers, hidden_dim, intermediate_dim, vocabulary_size, sequence_length
    sequences_heads = math.ceil(tokens / S) * num_heads
    products = [
        ("projection", 4 * L, (1, tokens, H, H)),
        ("feedforward_in", L, (1, tokens, H, I)),
        ("feedforward_out", L, (1, tokens, I, H)),
        ("attention_scores", L, (sequences_heads, S, H // num_heads, S)),
        ("attention_context", L, (sequences_heads, S, S, H // num_heads)),
    ]
    if head == "mlm":
        products += [("head_transform", 1, (1, predictions, H, H)), ("head_logits", 1, (1, predictions, H, V))]
    elif head == "clm":
        products += [("head_logits", 1, (1, tokens, H, V))]
    else:
        raise ValueError(f"head must be 'clm' or 'mlm', got {head!r}")
    return products


def time_product(shape: tuple, dtype: str = "float32", repeats: int = 5) -> float:
    """Seconds for one forward matmul of `shape` ``(batch, m, k, n)`` and its two gradient matmuls.

    The median of `repeats` timed calls of each of the three, after one
    warm-up call each; reading one element waits for the product.

    Example:
        >>> time_product((1, 64, 32, 16), repeats=2) > 0
        True
    """
    batch, m, k, n = shape
    lead = [batch] if batch > 1 else []
    x = tf.cast(tf.random.stateless_normal(lead + [m, k], seed=[1, 2]), dtype)
    w = tf.cast(tf.random.stateless_normal(lead + [k, n], seed=[3, 4]), dtype)
    g = tf.cast(tf.random.stateless_normal(lead + [m, n], seed=[5, 6]), dtype)
    corner = (0,) * (len(lead) + 2)

    @tf.function
    def forward(x, w):
        return tf.linalg.matmul(x, w)[corner]

    @tf.function
    def input_gradient(g, w):
        return tf.linalg.matmul(g, w, transpose_b=True)[corner]

    @tf.function
    def weight_gradient(x, g):
        return tf.linalg.matmul(x, g, transpose_a=True)[corner]

    total = 0.0
    for function, arguments in ((forward, (x, w)), (input_gradient, (g, w)), (weight_gradient, (x, g))):
        function(*arguments).numpy()
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            function(*arguments).numpy()
            seconds.append(time.perf_counter() - start)
        total += statistics.median(seconds)
    return total


def matmul_ceiling(step_flops: float, products: list, peak_flops_per_s: float, dtype: str = "float32") -> dict:
    """Matmul-only seconds per step of `products` in `dtype`, and the MFU of `step_flops` in that time.

    Example:
        >>> products = [("projection", 2, (1, 64, 32, 32))]
        >>> ceiling = matmul_ceiling(6 * 2 * 64 * 32 * 32, products, 1e12)
        >>> 0 < ceiling["mfu"] and ceiling["dtype"]
        'float32'
    """
    timed, seconds = [], 0.0
    for name, count, shape in products:
        product_s = time_product(shape, dtype)
        seconds += count * product_s
        timed.append({"name": name, "count": count, "shape": list(shape), "seconds": product_s,
                      "flops_per_s": 6.0 * math.prod(shape) / product_s})
    return {"dtype": dtype, "flops_per_step": step_flops, "seconds_per_step": seconds,
            "mfu": step_flops / seconds / peak_flops_per_s,
            "products": timed}
