"""The contract between model families and objectives.

A model family builds a backbone and describes it with a :class:`ModelSpec`;
an objective reads only the spec (capabilities, vocabulary, special token
ids, the shared token embedding) and the backbone's named outputs. Neither
imports the other.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

#: Capabilities a model family can declare and an objective can require.
#:
#: - ``bidirectional``: every position of ``sequence_output`` sees the whole input.
#: - ``causal``: position ``i`` of ``sequence_output`` sees only positions ``<= i``.
#: - ``segments``: the backbone takes ``segment_ids`` (sentence pairs).
#: - ``pooled``: the backbone returns ``pooled_output``, one vector per sequence.
#: - ``decoder``: the backbone reconstructs through a decoder
#:   (``decoder_token_ids`` in, ``decoder_sequence_output`` out).
CAPABILITIES = frozenset({"bidirectional", "causal", "segments", "pooled", "decoder"})

#: Roles of special tokens. Each tokenizer maps the roles it has to token ids.
SPECIAL_TOKEN_ROLES = ("pad", "unk", "start", "end", "mask")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What an objective may know about a built backbone.

    Attributes:
        family: the model family's registered name, e.g. ``"bert"``.
        capabilities: a subset of :data:`CAPABILITIES`.
        vocabulary_size: number of token ids the backbone embeds.
        special_token_ids: role (``pad``, ``unk``, ``start``, ``end``,
            ``mask``) to token id, for the roles the tokenizer has.
        max_sequence_length: longest sequence the backbone accepts.
        hidden_dim: width of ``sequence_output``.
        token_embedding: the backbone's ``keras.layers.ReversibleEmbedding``;
            language-model heads tie their output projection to it.
        input_names: names of the backbone's inputs.
        output_names: names of the backbone's outputs.
        sentinel_ids: ids of the tokenizer's sentinels ``<extra_id_0>``,
            ``<extra_id_1>``, ..., in order: tokens no text contains, which
            denoising puts in place of dropped spans (T5).
        sentence_end_ids: ids of the tokens that end a sentence (``.``,
            ``!``, ``?``), for noise that works on sentences.

    :func:`zoo.build` fills the last two from the tokenizer.
    """

    family: str
    capabilities: frozenset
    vocabulary_size: int
    special_token_ids: Mapping[str, int]
    max_sequence_length: int
    hidden_dim: int
    token_embedding: Any
    input_names: tuple
    output_names: tuple
    sentinel_ids: tuple = ()
    sentence_end_ids: tuple = ()

    @property
    def all_special_ids(self) -> tuple:
        """Sorted, distinct ids of every special token, sentinels included."""
        return tuple(sorted(set(self.special_token_ids.values()) | set(self.sentinel_ids)))


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    """A registered model family: presets plus a builder.

    Attributes:
        name: registry name, e.g. ``"bert"``.
        build: ``build(config, special_token_ids) -> (backbone, ModelSpec)``,
            where ``config`` is a preset merged with the user's overrides and
            ``vocabulary_size`` set from the tokenizer. The backbone is a
            functional ``keras.Model`` with named inputs (``token_ids``,
            ``padding_mask``, ...) and a dict of named outputs
            (``sequence_output``, ``pooled_output``, ...).
        presets: size name (``tiny``, ``small``, ``base``) to config dict.
        capabilities: what every backbone of the family offers.
        tokenizer_kind: the tokenizer trained for it by default
            (``"wordpiece"`` or ``"byte_bpe"``).
        default_objective: the objective ``zoo.build(name)`` uses when given none.
        description: one line for ``zoo list``.
    """

    name: str
    build: Callable[..., tuple]
    presets: Mapping[str, Mapping[str, Any]]
    capabilities: frozenset
    tokenizer_kind: str
    default_objective: str
    description: str = ""
