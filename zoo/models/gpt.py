"""GPT-2 (Radford et al., 2019): keras-hub's ``GPT2Backbone``, registered as ``gpt``.

The backbone is ``keras_hub.models.GPT2Backbone`` itself, unchanged. It
takes int32 ``token_ids`` and ``padding_mask`` and, unlike the other
families, returns a bare tensor rather than a dict: the spec names it
``sequence_output`` and callers wrap it as ``{"sequence_output": tensor}``.
"""

from __future__ import annotations

import keras_hub

from zoo.hookspecs import hookimpl
from zoo.models.common import check_heads, check_options, describe
from zoo.spec import ModelFamily

PRESETS = {
    "tiny": {
        "vocabulary_size": 8192, "num_layers": 2, "num_heads": 2, "hidden_dim": 128, "intermediate_dim": 512,
        "dropout": 0.1, "max_sequence_length": 512,
    },
    "small": {
        "vocabulary_size": 8192, "num_layers": 4, "num_heads": 4, "hidden_dim": 256, "intermediate_dim": 1024,
        "dropout": 0.1, "max_sequence_length": 1024,
    },
    "base": {
        "vocabulary_size": 8192, "num_layers": 12, "num_heads": 12, "hidden_dim": 768, "intermediate_dim": 3072,
        "dropout": 0.1, "max_sequence_length": 1024,
    },
}


def build(config, special_token_ids):
    """Build a ``keras_hub.models.GPT2Backbone`` and its :class:`~zoo.spec.ModelSpec`.

    Args:
        config: a preset of :data:`PRESETS` merged with overrides.
        special_token_ids: role to token id, passed through to the spec.

    Example:
        >>> backbone, spec = build(dict(PRESETS["tiny"], vocabulary_size=100), {"pad": 0})
        >>> sorted(spec.capabilities), spec.input_names, spec.output_names
        (['causal'], ('token_ids', 'padding_mask'), ('sequence_output',))
    """
    check_options(
        FAMILY, config,
        positive=("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim",
                  "max_sequence_length"),
    )
    check_heads(FAMILY, config)
    backbone = keras_hub.models.GPT2Backbone(**{name: config[name] for name in PRESETS["tiny"]})
    spec = describe(
        FAMILY, backbone, special_token_ids, vocabulary_size=config["vocabulary_size"],
        max_sequence_length=config["max_sequence_length"], hidden_dim=config["hidden_dim"],
    )
    return backbone, spec


FAMILY = ModelFamily(
    name="gpt",
    build=build,
    presets=PRESETS,
    capabilities=frozenset({"causal"}),
    tokenizer_kind="byte_bpe",
    default_objective="clm",
    description="GPT-2 transformer decoder (keras-hub GPT2Backbone): causal",
)


@hookimpl
def zoo_register_models(register):
    """Register the ``gpt`` family."""
    register(FAMILY)
