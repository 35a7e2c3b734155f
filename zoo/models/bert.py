"""BERT (Devlin et al., 2019): keras-hub's ``BertBackbone``, registered as ``bert``.

The backbone is ``keras_hub.models.BertBackbone`` itself, unchanged, so
keras-hub's ``save_to_preset`` and ``Backbone.from_preset`` work on it. It
takes int32 ``token_ids``, ``segment_ids`` and ``padding_mask`` and returns
``sequence_output`` and ``pooled_output`` (a tanh projection of position 0).
"""

from __future__ import annotations

import keras_hub

from zoo.hookspecs import hookimpl
from zoo.models.common import check_heads, check_options, describe
from zoo.spec import ModelFamily

PRESETS = {
    "tiny": {
        "vocabulary_size": 8192, "num_layers": 2, "num_heads": 2, "hidden_dim": 128, "intermediate_dim": 512,
        "dropout": 0.1, "max_sequence_length": 512, "num_segments": 2,
    },
    "small": {
        "vocabulary_size": 8192, "num_layers": 4, "num_heads": 4, "hidden_dim": 256, "intermediate_dim": 1024,
        "dropout": 0.1, "max_sequence_length": 512, "num_segments": 2,
    },
    "base": {
        "vocabulary_size": 8192, "num_layers": 12, "num_heads": 12, "hidden_dim": 768, "intermediate_dim": 3072,
        "dropout": 0.1, "max_sequence_length": 512, "num_segments": 2,
    },
}


def build(config, special_token_ids):
    """Build a ``keras_hub.models.BertBackbone`` and its :class:`ModelSpec`.

    Args:
        config: a preset of :data:`PRESETS` merged with overrides.
        special_token_ids: role to token id, passed through to the spec.

    Example:
        >>> backbone, spec = build(dict(PRESETS["tiny"], vocabulary_size=100), {"pad": 0, "mask": 4})
        >>> sorted(spec.capabilities), spec.input_names
        (['bidirectional', 'pooled', 'segments'], ('token_ids', 'segment_ids', 'padding_mask'))
    """
    check_options(
        FAMILY, config,
        positive=("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim",
                  "max_sequence_length", "num_segments"),
    )
    check_heads(FAMILY, config)
    backbone = keras_hub.models.BertBackbone(**{name: config[name] for name in PRESETS["tiny"]})
    spec = describe(
        FAMILY, backbone, special_token_ids, vocabulary_size=config["vocabulary_size"],
        max_sequence_length=config["max_sequence_length"], hidden_dim=config["hidden_dim"],
    )
    return backbone, spec


FAMILY = ModelFamily(
    name="bert",
    build=build,
    presets=PRESETS,
    capabilities=frozenset({"bidirectional", "segments", "pooled"}),
    tokenizer_kind="wordpiece",
    default_objective="mlm",
    description="BERT transformer encoder (keras-hub BertBackbone): bidirectional, sentence pairs",
)


@hookimpl
def zoo_register_models(register):
    """Register the ``bert`` family."""
    register(FAMILY)
