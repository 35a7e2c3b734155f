"""Causal language modelling (``clm``): predict every next token, as in GPT.

Blocks come from the packing stage, so almost every position is a real
token. The label at position ``i`` is the token at ``i + 1``; the last
position of a block and every padding position get weight 0. Logits are
needed at every position and are tied to the token embedding.
"""

from __future__ import annotations

import tensorflow as tf

from zoo.hookspecs import hookimpl
from zoo.objective import Objective


class CausalLM(Objective):
    """Next-token prediction.

    Args:
        loss_weight: weight of this loss in the total.

    Labels: ``token_ids`` shifted left by one; weights are the shifted
    ``padding_mask`` with the last position 0.

    Example:
        >>> CausalLM().requires
        frozenset({'causal'})
    """

    name = "clm"
    requires = frozenset({"causal"})
    description = "causal language modelling (GPT): predict each next token"

    def prepare(self, features, spec, seed):
        token_ids = features["token_ids"]
        next_ids = tf.pad(token_ids[:, 1:], [[0, 0], [0, 1]])
        weights = tf.pad(features["padding_mask"][:, 1:], [[0, 0], [0, 1]])
        return features, next_ids, tf.cast(weights, tf.float32)

    def build_head(self, outputs, inputs, spec):
        return spec.token_embedding(outputs["sequence_output"], reverse=True)


@hookimpl
def zoo_register_objectives(register):
    register(CausalLM)
