"""The matmul ceiling of a transformer training step: the MFU it would reach running its matmuls one by one.

Model FLOPs (:mod:`benchmarks.flops`) are all matmul FLOPs. Timing each of
those matmuls alone, at the model's own shapes and compute dtype, each on
the faster of TensorFlow's matmul op and XLA's compiled dot (the kernels
the peak is timed on, :func:`benchmarks.hardware.matmul_kernels`), gives
the time a step would take running them one after another and nothing
else. The step's model FLOPs over that time, over the measured peak, is
the ceiling: the yardstick for the MFU column, and what the matmul kernels
lose at these shapes against the large square product of the peak (the
gap between the ceiling and 100%).

It is not an upper bound on a step's MFU. TensorFlow runs a step's
independent ops at once on its inter-op threads, and two small matmuls
at once can use the cores better than each alone: on the Zen 3 machine of
``RESULTS.md``, zoo's BERT step took 0.81 s against 0.96 s for its matmuls
timed alone, and 0.94–1.04 s with one inter-op thread.

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

import tensorflow as tf

from benchmarks.hardware import matmul_kernels
from zoo.measured_kernels import median_seconds


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


def time_product(shape: tuple, dtype: str = "float32", repeats: int = 5) -> dict:
    """Seconds for one forward matmul of `shape` ``(batch, m, k, n)`` and its two gradient matmuls.

    Each of the three is timed on both :func:`benchmarks.hardware.matmul_kernels`
    (the median of `repeats` calls, alternating, after a warm-up call);
    ``"fastest"`` adds up the faster kernel of each, the others one kernel's
    three.

    Example:
        >>> seconds = time_product((1, 64, 32, 16), repeats=2)
        >>> sorted(seconds), 0 < seconds["fastest"] <= min(seconds["matmul"], seconds["xla"])
        (['fastest', 'matmul', 'xla'], True)
    """
    batch, m, k, n = shape
    lead = [batch] if batch > 1 else []
    x = tf.cast(tf.random.stateless_normal(lead + [m, k], seed=[1, 2]), dtype)
    w = tf.cast(tf.random.stateless_normal(lead + [k, n], seed=[3, 4]), dtype)
    g = tf.cast(tf.random.stateless_normal(lead + [m, n], seed=[5, 6]), dtype)
    products = (({}, (x, w)), ({"transpose_b": True}, (g, w)), ({"transpose_a": True}, (x, g)))
    totals = {"fastest": 0.0, "matmul": 0.0, "xla": 0.0}
    for options, operands in products:  # forward, gradient of the input, gradient of the weight
        seconds = median_seconds(matmul_kernels(**options), *operands, calls=repeats)
        totals["fastest"] += min(seconds.values())
        for kernel, time_s in seconds.items():
            totals[kernel] += time_s
    return totals


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
        product = time_product(shape, dtype)
        seconds += count * product["fastest"]
        timed.append({"name": name, "count": count, "shape": list(shape), "seconds": product["fastest"],
                      "flops_per_s": 6.0 * math.prod(shape) / product["fastest"],
                      "kernel_seconds": {kernel: product[kernel] for kernel in ("matmul", "xla")}})
    return {"dtype": dtype, "flops_per_step": step_flops, "seconds_per_step": seconds,
            "mfu": step_flops / seconds / peak_flops_per_s,
            "products": timed}
