"""``zoo.build``: a compiled task from a model name and objective names."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping

from zoo import registry
from zoo.errors import ConfigError, IncompatibleError, check_integer, unknown_name
from zoo.objective import Objective
from zoo.precision import precision_scope, resolve_precision
from zoo.task import Task
from zoo.text.tokenizer import resolve_tokenizer

DEFAULT_SEQUENCE_LENGTH = 128


def build(model: str, objective=None, *, size: str = "tiny", tokenizer=None, sequence_length: int | None = None,
          seed: int = 0, precision: str = "auto", **overrides) -> Task:
    """Build and compile a task: a backbone with one head per objective.

    Args:
        model: a registered model family (``zoo.models()``).
        objective: an objective name, an :class:`zoo.Objective`, a list of
            either, or a dict of name to parameters
            (``{"mlm": {"mask_rate": 0.2}}``); default: the family's own.
        size: a preset of the family (``tiny``, ``small``, ``base``).
        tokenizer: a :class:`zoo.text.tokenizer.Tokenizer` or a saved
            tokenizer directory; default: one trained on the embedded
            corpus (cached after the first use), with ``vocabulary_size``
            from the overrides if given.
        sequence_length: length of training examples; default
            ``min(128, max_sequence_length)``.
        seed: seed of the data pipeline's shuffling and corruption; as with
            any TensorFlow op seed, the streams also follow TensorFlow's
            global seed (``keras.utils.set_random_seed``).
        precision: ``auto`` (mixed bfloat16 where the hardware runs it
            faster, else float32), ``float32``, ``mixed_bfloat16`` or
            ``mixed_float16``; see :mod:`zoo.precision`.
        **overrides: preset options in keras-hub names (``num_layers``,
            ``hidden_dim``, ``dropout``, ...).

    Returns:
        A compiled :class:`zoo.task.Task` whose ``fit``/``predict`` take raw strings.

    Example:
        >>> import zoo
        >>> model = zoo.build("bert", objective="mlm", num_layers=1)
        >>> sorted(model.output)
        ['mlm']
    """
    task = assemble(model, objective, size=size, tokenizer=tokenizer, sequence_length=sequence_length, seed=seed,
                    precision=precision, **overrides)
    task.compile()
    return task


def assemble(model: str, objective=None, *, size: str = "tiny", tokenizer=None, sequence_length: int | None = None,
             seed: int = 0, precision: str = "auto", **overrides) -> Task:
    """:func:`build` without compiling: what loading a saved task starts from, before its own compile arguments.

    Example:
        >>> assemble("bert", "mlm", num_layers=1).compiled
        False
    """
    family = registry.model_entry(model).value
    check_integer("seed", seed, 0, 2**32 - 1)
    if sequence_length is not None:
        check_integer("sequence_length", sequence_length, 2)
    policy = resolve_precision(precision)
    objectives = _objectives(objective, family.default_objective)
    for instance in objectives:
        registry.check_compatible(family, type(instance))
    if size not in family.presets:
        raise unknown_name(f"{family.name} size", size, family.presets)
    config = dict(family.presets[size])
    for key in overrides:
        if key not in config:
            raise unknown_name(f"{family.name} option", key, config)
    config.update(overrides)
    tokenizer = resolve_tokenizer(tokenizer, family.tokenizer_kind, overrides.get("vocabulary_size"))
    if "vocabulary_size" in overrides and overrides["vocabulary_size"] != tokenizer.vocabulary_size:
        raise ConfigError(
            f"vocabulary_size={overrides['vocabulary_size']} but the tokenizer has "
            f"{tokenizer.vocabulary_size} tokens; drop the override or pass a matching tokenizer"
        )
    config["vocabulary_size"] = tokenizer.vocabulary_size
    with precision_scope(policy):
        backbone, spec = family.build(config, tokenizer.special_token_ids)
        if spec.vocabulary_size:  # token ids (not the feature vectors of a vector autoencoder)
            spec = dataclasses.replace(
                spec, sentinel_ids=tokenizer.sentinel_ids, sentence_end_ids=tokenizer.sentence_end_ids
            )
        arguments = dict(model=family.name, size=size, sequence_length=sequence_length, seed=seed,
                         precision=precision, overrides=dict(overrides))
        return _task(family, backbone, spec, objectives, tokenizer, sequence_length, seed, arguments)


def _task(family, backbone, spec, objectives, tokenizer, sequence_length, seed, arguments) -> Task:
    for instance in objectives:
        missing = set(instance.requires) - set(spec.capabilities)
        if missing:
            raise IncompatibleError(
                f"{family.name} built with these options lacks {', '.join(sorted(missing))}, "
                f"which {instance.name} needs"
            )
    if not spec.max_sequence_length:  # a backbone of feature vectors: no sequences
        if sequence_length is not None:
            raise ConfigError(f"{family.name} built on feature vectors takes no sequence_length; drop it")
        return Task(backbone, spec, objectives, tokenizer, 0, seed=seed, build_arguments=arguments)
    if sequence_length is None:
        sequence_length = min(DEFAULT_SEQUENCE_LENGTH, spec.max_sequence_length)
    if not 2 <= sequence_length <= spec.max_sequence_length:
        raise ConfigError(
            f"sequence_length must be between 2 and {family.name}'s max_sequence_length "
            f"{spec.max_sequence_length}, got {sequence_length}; raise max_sequence_length or shorten it"
        )
    return Task(backbone, spec, objectives, tokenizer, sequence_length, seed=seed, build_arguments=arguments)


def _objectives(objective, default: str) -> list:
    if objective is None:
        objective = default
    if isinstance(objective, (str, Objective)):
        objective = [objective]
    if isinstance(objective, Mapping):
        if not objective:
            raise ConfigError("objective is an empty dict; name at least one objective, or leave it out for "
                              f"the family's default ({default})")
        return [_instantiate(name, params) for name, params in objective.items()]
    if not isinstance(objective, (list, tuple)) or not objective:
        raise ConfigError(
            f"objective must be a name, a zoo.Objective, a list of them or a dict of name to parameters; "
            f"got {objective!r}"
        )
    return [item if isinstance(item, Objective) else _instantiate(item, {}) for item in objective]


def _instantiate(name, params) -> Objective:
    if not isinstance(name, str):
        raise ConfigError(f"objective names are strings, got {name!r}")
    cls = registry.objective_entry(name).value
    if params is not None and not isinstance(params, Mapping):
        raise ConfigError(f"the parameters of {name} must be a dict of name to value, got {params!r}; "
                          f"write {{{name!r}: {{'parameter': value}}}}")
    params = dict(params or {})
    accepted = inspect.signature(cls).parameters
    for key in params:
        if key not in accepted:
            raise unknown_name(f"{name} parameter", key, accepted)
    return cls(**params)
