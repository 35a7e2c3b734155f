"""Config checks and :class:`~zoo.spec.ModelSpec` construction shared by the built-in families."""

from __future__ import annotations

from zoo.errors import ConfigError
from zoo.spec import ModelFamily, ModelSpec


def check_options(family: ModelFamily, config, positive=(), fractions=("dropout",)) -> None:
    """Raise :class:`ConfigError` for a missing option or a value out of range.

    Args:
        family: the family whose presets list the options ``config`` must have.
        config: the merged options.
        positive: names that must be integers >= 1.
        fractions: names that must be numbers in ``[0, 1)``.

    Example:
        >>> from zoo.models.bert import FAMILY, PRESETS
        >>> check_options(FAMILY, dict(PRESETS["tiny"], num_layers=0), positive=["num_layers"])
        Traceback (most recent call last):
        ...
        zoo.errors.ConfigError: bert option num_layers must be an integer >= 1, got 0
    """
    missing = sorted(set(family.presets["tiny"]) - set(config))
    if missing:
        raise ConfigError(f"{family.name} config lacks {', '.join(missing)}; start from one of its presets")
    for name in positive:
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{family.name} option {name} must be an integer >= 1, got {value!r}")
    for name in fractions:
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ConfigError(f"{family.name} option {name} must be a number in [0, 1), got {value!r}")


def check_heads(family: ModelFamily, config) -> None:
    """Raise :class:`ConfigError` unless ``hidden_dim`` splits evenly into ``num_heads``.

    Example:
        >>> from zoo.models.bert import FAMILY
        >>> check_heads(FAMILY, {"hidden_dim": 100, "num_heads": 3})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        zoo.errors.ConfigError: bert hidden_dim=100 is not divisible by num_heads=3; ...
    """
    hidden_dim, num_heads = config["hidden_dim"], config["num_heads"]
    if hidden_dim % num_heads:
        fitting = max(n for n in range(1, num_heads + 1) if hidden_dim % n == 0)
        raise ConfigError(
            f"{family.name} hidden_dim={hidden_dim} is not divisible by num_heads={num_heads}; "
            f"use e.g. num_heads={fitting} or hidden_dim={-(-hidden_dim // num_heads) * num_heads}"
        )


def describe(family: ModelFamily, backbone, special_token_ids, *, vocabulary_size, max_sequence_length,
             hidden_dim) -> ModelSpec:
    """The :class:`ModelSpec` of `backbone`: names, embedding and capabilities read from it.

    A backbone whose output is a bare tensor (``GPT2Backbone``) has the one
    output name ``sequence_output``.

    Example:
        >>> from zoo.models.bert import FAMILY, PRESETS, build
        >>> backbone, spec = build(dict(PRESETS["tiny"], num_layers=1, vocabulary_size=100), {"pad": 0})
        >>> describe(FAMILY, backbone, {"pad": 0}, vocabulary_size=100, max_sequence_length=512,
        ...          hidden_dim=128) == spec
        True
    """
    output = backbone.output
    return ModelSpec(
        family=family.name,
        capabilities=family.capabilities,
        vocabulary_size=vocabulary_size,
        special_token_ids=dict(special_token_ids),
        max_sequence_length=max_sequence_length,
        hidden_dim=hidden_dim,
        token_embedding=backbone.token_embedding,
        input_names=tuple(backbone.input),
        output_names=tuple(output) if isinstance(output, dict) else ("sequence_output",),
    )
