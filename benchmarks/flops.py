"""Analytic model FLOPs of a training step, for model-FLOPs utilisation (MFU).

Training costs three times the forward pass (forward, then gradients with
respect to activations and to weights), and a forward matmul of an
``m × n`` weight costs ``2·m·n`` FLOPs per token, so a token costs
``6 · N`` FLOPs where ``N`` counts the weights used in matmuls for it
(embedding lookups, biases, normalisation and softmax are left out, as in
Kaplan et al. 2020 and PaLM's MFU).

Transformer (BERT, GPT-2), per non-padding token, with ``L`` layers,
width ``H``, feed-forward width ``I``, sequence length ``S``::

    6 · L · (4·H² + 2·H·I)        # attention projections Q, K, V, O and the feed-forward
  + 12 · L · S · H                # attention scores Q·Kᵀ and their use on V

The attention term counts every one of the ``S`` positions a token
attends to (the causal mask's zeros included, as PaLM does). Output heads,
with vocabulary ``V``:

- causal LM: ``6 · H · V`` per non-padding token (logits at every position);
- masked LM: ``6 · (H² + H · V)`` per predicted position only (the head's
  dense transform and the vocabulary projection run at the selected
  positions; slots of the position list that select nothing are padding).

LSTM LM, per token: ``6 · (Σ_layers 4·h·(in + h) + h·E + E·V)``: four gates
of each layer over its input (``in`` = ``E`` for the first layer, ``h``
after) and its state, the projection from ``h`` to the embedding width
``E`` when they differ, and the output tied to the embedding.

Only useful work counts: padding positions and unselected prediction
slots are computed by the model but are not model FLOPs. The pooler of
BERT (one ``H × H`` matmul per sequence) is left out.
"""

from __future__ import annotations


def transformer_flops(tokens: float, predictions: float, *, head: str, num_layers: int, hidden_dim: int,
                      intermediate_dim: int, vocabulary_size: int, sequence_length: int) -> float:
    """Training FLOPs for `tokens` non-padding tokens and `predictions` masked-LM predictions.

    `head` is ``"clm"`` (logits at every token) or ``"mlm"`` (at predictions).

    Example:
        >>> transformer_flops(1, 0, head="clm", num_layers=1, hidden_dim=2, intermediate_dim=4,
        ...                   vocabulary_size=10, sequence_length=3)
        384.0
    """
    L, H, I, V, S = num_layers, hidden_dim, intermediate_dim, vocabulary_size, sequence_length
    per_token = 6.0 * L * (4 * H * H + 2 * H * I) + 12.0 * L * S * H
    if head == "clm":
        return tokens * (per_token + 6.0 * H * V)
    if head == "mlm":
        return tokens * per_token + predictions * 6.0 * (H * H + H * V)
    raise ValueError(f"head must be 'clm' or 'mlm', got {head!r}")


def lstm_flops(tokens: float, *, num_layers: int, hidden_dim: int, embedding_dim: int, vocabulary_size: int) -> float:
    """Training FLOPs of zoo's LSTM LM for `tokens` non-padding tokens.

    Example:
        >>> lstm_flops(1, num_layers=1, hidden_dim=2, embedding_dim=2, vocabulary_size=10)
        312.0
    """
    h, E, V = hidden_dim, embedding_dim, vocabulary_size
    weights = sum(4 * h * ((E if layer == 0 else h) + h) for layer in range(num_layers))
    weights += (h * E if h != E else 0) + E * V
    return tokens * 6.0 * weights
