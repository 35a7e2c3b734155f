"""Causal language modelling (``clm``): predict every next token, as in GPT.

Blocks come from the packing stage, so almost every position is a real
token. The label at position ``i`` is the token at ``i + 1``; the last
position of a block and every padding position get weight 0. Logits are
needed at every position and are tied to the token embedding.
"""

from __future__ import annotations

import tensorflow as tf

from zoo.errors import ConfigError
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

    def serve(self, inputs, context):
        """Next-token top-k and a greedy continuation of ``context.max_new_tokens`` tokens.

        The text is cut from the left to leave room for the new tokens. An
        empty string continues from the start token alone. Returns
        ``next_tokens`` (string ``[batch, top_k]``), ``next_scores``
        (float32 probabilities), ``continuation`` (string ``[batch]``, the
        decoded new tokens) and ``continuation_ids`` (int32
        ``[batch, max_new_tokens]``).
        """
        spec, length, new = context.spec, context.sequence_length, context.max_new_tokens
        if new >= length - 1:
            raise ConfigError(
                f"max_new_tokens={new} leaves no room for text in sequence_length={length}; "
                f"export with max_new_tokens < {length - 1}"
            )
        prompt = context.tokenize(inputs["text"])[:, -(length - 1 - new):]
        starts = tf.fill([prompt.nrows(), 1], tf.constant(spec.special_token_ids["start"], prompt.dtype))
        prompt = tf.concat([starts, prompt], axis=1)
        lengths = tf.cast(prompt.row_lengths(), tf.int32)
        token_ids = prompt.to_tensor(default_value=spec.special_token_ids["pad"], shape=[None, length])
        rows = tf.range(tf.shape(token_ids)[0])

        def next_token_probabilities(token_ids, lengths):
            padding_mask = tf.sequence_mask(lengths, length, dtype=tf.int32)
            inputs = context.model_inputs({"token_ids": token_ids, "padding_mask": padding_mask})
            logits = tf.gather(context.outputs(inputs)[self.name], lengths - 1, batch_dims=1)
            return tf.nn.softmax(tf.cast(logits, tf.float32))

        first = next_token_probabilities(token_ids, lengths)
        next_scores, next_ids = tf.math.top_k(first, k=context.top_k)

        def step(index, token_ids, lengths, probabilities):
            chosen = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            token_ids = tf.tensor_scatter_nd_update(token_ids, tf.stack([rows, lengths], axis=1), chosen)
            lengths = lengths + 1
            return index + 1, token_ids, lengths, next_token_probabilities(token_ids, lengths)

        _, token_ids, _, _ = tf.while_loop(
            lambda index, *_: index < new, step, [tf.constant(0), token_ids, lengths, first],
            maximum_iterations=new,
        )
        new_positions = lengths[:, None] + tf.range(new)[None, :]
        continuation_ids = tf.gather(token_ids, new_positions, batch_dims=1)
        return {
            "next_tokens": context.tokens(next_ids),
            "next_scores": next_scores,
            "continuation": context.detokenize(continuation_ids),
            "continuation_ids": continuation_ids,
        }

    def build_head(self, outputs, inputs, spec):
        return spec.token_embedding(outputs["sequence_output"], reverse=True)


@hookimpl
def zoo_register_objectives(register):
    register(CausalLM)
