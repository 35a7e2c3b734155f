"""Masked language modelling (``mlm``), as in BERT (Devlin et al., 2019).

Choices, per sequence of a batch:

- Candidates are the non-padding positions whose token is not special
  (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[MASK]``, ``[UNK]``: every id in
  ``ModelSpec.special_token_ids``). Special and padding tokens are never
  selected.
- Counting rule: ``n = min(max_predictions, max(1, round(mask_rate * c)))``
  positions are selected, where ``c`` is the number of candidates (``n = 0``
  when ``c = 0``), uniformly at random without replacement. This is the
  rule of BERT's ``create_pretraining_data.py``.
- Of the selected positions, ``mask_token_rate`` (80%) become the mask
  token, ``random_token_rate`` (10%) a uniformly drawn non-special token,
  and the rest (10%) keep their token. Each position draws independently,
  so the split holds in expectation.
- Loss and accuracy count only selected positions; the head projects only
  the selected positions onto the vocabulary (``MaskedLMHead``, tied to the
  token embedding), never the whole sequence.

Randomness is stateless and seeded, so the same batch and seed give the
same masks in a direct call and in ``Dataset.map``. keras-hub's
``MaskedLMMaskGenerator`` is not used because its selection cannot be
seeded per batch.
"""

from __future__ import annotations

import math

import keras
import keras_hub
import tensorflow as tf

from zoo.errors import ConfigError
from zoo.hookspecs import hookimpl
from zoo.objective import Objective


class MaskedLM(Objective):
    """Masked language modelling.

    Args:
        mask_rate: share of candidate tokens selected for prediction.
        max_predictions: cap on selected tokens per sequence; default
            ``ceil(mask_rate * sequence_length)``.
        mask_token_rate: share of selected tokens replaced by the mask token.
        random_token_rate: share of selected tokens replaced by a random token.
        loss_weight: weight of this loss in the total.

    Inputs added: ``mlm_positions`` (int32 ``[batch, max_predictions]``).
    Labels: the original tokens at those positions; weights 1 where a
    position was selected, 0 for the padding of the position list.

    Example:
        >>> objective = MaskedLM(mask_rate=0.15)
        >>> objective.max_predictions_for(128)
        20
    """

    name = "mlm"
    requires = frozenset({"bidirectional"})
    description = "masked language modelling (BERT): predict 15% of tokens, 80/10/10 mask/random/keep"

    def __init__(
        self,
        *,
        mask_rate: float = 0.15,
        max_predictions: int | None = None,
        mask_token_rate: float = 0.8,
        random_token_rate: float = 0.1,
        loss_weight: float = 1.0,
    ):
        super().__init__(loss_weight=loss_weight)
        if not 0 < mask_rate <= 1:
            raise ConfigError(f"mlm: mask_rate must be in (0, 1], got {mask_rate!r}")
        if not (0 <= mask_token_rate and 0 <= random_token_rate and mask_token_rate + random_token_rate <= 1):
            raise ConfigError(
                "mlm: mask_token_rate and random_token_rate must be >= 0 and sum to at most 1, "
                f"got {mask_token_rate!r} and {random_token_rate!r}"
            )
        if max_predictions is not None and max_predictions < 1:
            raise ConfigError(f"mlm: max_predictions must be >= 1, got {max_predictions!r}")
        self.mask_rate = mask_rate
        self.max_predictions = max_predictions
        self.mask_token_rate = mask_token_rate
        self.random_token_rate = random_token_rate

    def max_predictions_for(self, sequence_length: int) -> int:
        """Length of the position list for sequences of `sequence_length`."""
        if self.max_predictions is not None:
            return self.max_predictions
        return max(1, math.ceil(self.mask_rate * sequence_length))

    def prepare(self, features, spec, seed):
        token_ids = features["token_ids"]
        batch_size, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
        num_predictions = self.max_predictions_for(token_ids.shape[1])
        special_ids = tf.constant(spec.all_special_ids, token_ids.dtype)
        is_special = tf.reduce_any(token_ids[..., None] == special_ids, axis=-1)
        candidate = (features["padding_mask"] > 0) & ~is_special
        num_candidates = tf.reduce_sum(tf.cast(candidate, tf.float32), axis=1)
        num_selected = tf.minimum(
            float(num_predictions), tf.maximum(1.0, tf.round(self.mask_rate * num_candidates))
        )
        num_selected = tf.cast(tf.where(num_candidates > 0, num_selected, 0.0), tf.int32)

        select_seed, action_seed, token_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        scores = tf.random.stateless_uniform([batch_size, length], seed=select_seed)
        scores = tf.where(candidate, scores, -1.0)
        # Top scores are a uniform sample of candidates without replacement.
        _, top_positions = tf.math.top_k(scores, k=tf.minimum(num_predictions, length))
        rank = tf.range(tf.shape(top_positions)[1])[None, :]
        keys = tf.where(rank < num_selected[:, None], top_positions, length)
        keys = tf.sort(keys, axis=1)  # selected positions first, in sequence order
        keys = tf.pad(keys, [[0, 0], [0, num_predictions - tf.shape(keys)[1]]], constant_values=length)
        selected = keys < length
        positions = tf.where(selected, keys, 0)
        labels = tf.where(selected, tf.gather(token_ids, positions, batch_dims=1), 0)

        action = tf.random.stateless_uniform(tf.shape(positions), seed=action_seed)
        non_special = tf.constant(
            sorted(set(range(spec.vocabulary_size)) - set(spec.all_special_ids)), token_ids.dtype
        )
        random_tokens = tf.gather(
            non_special,
            tf.random.stateless_uniform(
                tf.shape(positions), seed=token_seed, maxval=non_special.shape[0], dtype=tf.int32
            ),
        )
        mask_id = tf.constant(spec.special_token_ids["mask"], token_ids.dtype)
        replacement = tf.where(
            action < self.mask_token_rate,
            mask_id,
            tf.where(action < self.mask_token_rate + self.random_token_rate, random_tokens, labels),
        )
        rows = tf.broadcast_to(tf.range(batch_size)[:, None], tf.shape(positions))
        indices = tf.boolean_mask(tf.stack([rows, positions], axis=-1), selected)
        corrupted = tf.tensor_scatter_nd_update(token_ids, indices, tf.boolean_mask(replacement, selected))
        features = {**features, "token_ids": corrupted, "mlm_positions": positions}
        return features, labels, tf.cast(selected, tf.float32)

    def prepare_inference(self, features, spec):
        """Predict at the mask tokens the text already contains, in order."""
        token_ids = features["token_ids"]
        length = tf.shape(token_ids)[1]
        num_predictions = self.max_predictions_for(token_ids.shape[1])
        is_mask = token_ids == spec.special_token_ids["mask"]
        keys = tf.sort(tf.where(is_mask, tf.range(length)[None, :], length), axis=1)
        keys = tf.pad(keys, [[0, 0], [0, tf.maximum(0, num_predictions - length)]], constant_values=length)
        keys = keys[:, :num_predictions]
        return {**features, "mlm_positions": tf.where(keys < length, keys, 0)}

    def serve(self, inputs, context):
        """Fill-mask: the top-k tokens and probabilities for each mask token in the text.

        Returns ``tokens`` (string) and ``scores`` (float32), both
        ``[batch, max_predictions, top_k]``, ``positions`` (int32 token
        positions) and ``is_mask`` (int32, 1 where the row had a mask there).
        """
        features = context.features(inputs["text"])
        probabilities = tf.nn.softmax(tf.cast(context.outputs(features)[self.name], tf.float32))
        scores, token_ids = tf.math.top_k(probabilities, k=context.top_k)
        positions = features["mlm_positions"]
        is_mask = tf.gather(features["token_ids"], positions, batch_dims=1) == context.spec.special_token_ids["mask"]
        return {
            "tokens": context.tokens(token_ids),
            "scores": scores,
            "positions": positions,
            "is_mask": tf.cast(is_mask, tf.int32),
        }

    def head_inputs(self, spec, sequence_length):
        return {
            "mlm_positions": keras.Input(
                shape=(self.max_predictions_for(sequence_length),), dtype="int32", name="mlm_positions"
            )
        }

    def build_head(self, outputs, inputs, spec):
        head = keras_hub.layers.MaskedLMHead(
            vocabulary_size=spec.vocabulary_size,
            token_embedding=spec.token_embedding,
            intermediate_activation="gelu",
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="mlm_head",
        )
        return head(outputs["sequence_output"], mask_positions=inputs["mlm_positions"])


@hookimpl
def zoo_register_objectives(register):
    register(MaskedLM)
