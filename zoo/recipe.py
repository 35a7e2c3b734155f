"""Recipes: TOML files that say what to train, on what, and how.

A recipe is data, read with :mod:`tomllib` and validated into the
dataclasses below; an unknown key or a value of the wrong type is a
:class:`zoo.errors.ConfigError` naming the key (with the nearest valid key
for a misspelt one). Built-in recipes ship with the package (the
``recipes/`` folder of the repository, installed as ``zoo.recipes``) and are
named by their file stem: ``bert-mlm``, ``gpt-clm``, ...

Layout (every table and key is optional except ``[model] name``)::

    name = "bert-mlm"              # run folder name: runs/NAME
    description = "..."
    init_from = ""                 # a run folder or a keras-hub preset folder to start from
    strategy = "auto"              # see zoo.distribute

    [model]                        # a model family, its size, and keras-hub-named overrides
    name = "bert"
    size = "tiny"
    sequence_length = 128
    num_layers = 2                 # any option of the family's presets

    [objectives.mlm]               # one table per objective: its parameters and loss weight
    loss_weight = 1.0

    [data]
    train = ""                     # glob of UTF-8 text files; "" = the embedded default corpus
    validation = ""                # glob; "" = a held-out split of the training documents
    split = "paragraph"            # one document per blank-line-separated paragraph, or "line"
    labeled = ""                   # pseudo_label: glob of TSV files, text<TAB>label per line
    unlabeled = ""                 # pseudo_label: glob of unlabeled text files

    [tokenizer]
    kind = ""                      # "wordpiece" or "byte_bpe"; "" = the family's own
    vocabulary_size = 8192
    path = ""                      # a saved tokenizer folder to use instead of training one

    [training]
    batch_size = 32                # global: divided across replicas
    steps = 300                    # or epochs = N (passes over the training documents)
    learning_rate = 1e-3           # AdamW, linear warmup then decay
    warmup_steps = 30
    decay = "cosine"               # "cosine", "linear" or "constant"
    weight_decay = 0.01
    clipnorm = 1.0                 # global gradient-norm clipping; 0 = none
    precision = "auto"             # auto | float32 | mixed_bfloat16 | mixed_float16
    seed = 0
    checkpoint_every = 100         # steps between checkpoints
    keep_checkpoints = 2
    log_every = 10                 # steps between TensorBoard points

    [export]
    enabled = true
    top_k = 5
    max_new_tokens = 16
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import math
import pathlib
import tomllib
import typing

from zoo import registry
from zoo.errors import ConfigError, UnknownNameError, unknown_name

DECAYS = ("cosine", "linear", "constant")
SPLITS = ("paragraph", "line")
TOKENIZER_KINDS = ("", "wordpiece", "byte_bpe")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


@dataclasses.dataclass
class ModelSection:
    """The model family, its size preset, the example length and preset overrides."""

    name: str = ""
    size: str = "tiny"
    sequence_length: int = 128
    overrides: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class DataSection:
    """Where the text comes from (globs; empty means the embedded default corpus)."""

    train: str = ""
    validation: str = ""
    split: str = "paragraph"
    labeled: str = ""
    unlabeled: str = ""


@dataclasses.dataclass
class TokenizerSection:
    """The tokenizer to train (kind, size) or to load (path)."""

    kind: str = ""
    vocabulary_size: int = 8192
    path: str = ""


@dataclasses.dataclass
class TrainingSection:
    """Batching, length of training, the AdamW schedule, precision, seed and checkpointing."""

    batch_size: int = 32
    steps: int = 0
    epochs: int = 0
    learning_rate: float = 1e-3
    warmup_steps: int = 0
    decay: str = "cosine"
    weight_decay: float = 0.01
    clipnorm: float = 1.0
    precision: str = "auto"
    seed: int = 0
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10


@dataclasses.dataclass
class ExportSection:
    """Whether the run ends with a SavedModel export, and the endpoints' options."""

    enabled: bool = True
    top_k: int = 5
    max_new_tokens: int = 16


@dataclasses.dataclass
class Recipe:
    """A validated recipe; :func:`load_recipe` makes one from a file or a built-in name."""

    name: str = ""
    description: str = ""
    init_from: str = ""
    strategy: str = "auto"
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    objectives: dict = dataclasses.field(default_factory=dict)
    data: DataSection = dataclasses.field(default_factory=DataSection)
    tokenizer: TokenizerSection = dataclasses.field(default_factory=TokenizerSection)
    training: TrainingSection = dataclasses.field(default_factory=TrainingSection)
    export: ExportSection = dataclasses.field(default_factory=ExportSection)

    def to_dict(self) -> dict:
        """The recipe as plain data, in the layout of a recipe file (model overrides inlined)."""
        data = dataclasses.asdict(self)
        overrides = data["model"].pop("overrides")
        data["model"].update(overrides)
        return data

    def to_toml(self) -> str:
        """The recipe as TOML text that :func:`parse_recipe` reads back to an equal recipe.

        Example:
            >>> recipe = parse_recipe('[model]\\nname = "gpt"\\n[training]\\nsteps = 3')
            >>> parse_recipe(recipe.to_toml()) == recipe
            True
        """
        return _dump_toml(self.to_dict())


def builtin_recipes() -> dict:
    """Built-in recipe name to its file, as installed with the package.

    Example:
        >>> {"bert-mlm", "gpt-clm", "lstm-clm"} <= set(builtin_recipes())
        True
    """
    folder = importlib.resources.files("zoo.recipes")
    return {item.name.removesuffix(".toml"): item for item in sorted(folder.iterdir(), key=lambda i: i.name)
            if item.name.endswith(".toml")}


def load_recipe(recipe, overrides=()) -> Recipe:
    """A validated :class:`Recipe` from a path or built-in name, with ``key=value`` overrides applied.

    Overrides use dotted keys (``training.steps=5``, ``model.num_layers=1``,
    ``objectives.mlm.mask_rate=0.2``, ``init_from=runs/bert-mlm``); values are
    TOML values, and anything that is not one is taken as a string.

    Example:
        >>> load_recipe("bert-mlm", ["training.steps=7", "model.num_layers=1"]).training.steps
        7
    """
    if isinstance(recipe, Recipe):
        data = recipe.to_dict()
        source = recipe.name or "recipe"
    else:
        text, source = _read_recipe_text(recipe)
        data = _parse_toml(text, source)
    for item in overrides:
        _apply_override(data, item)
    recipe = _validate(data, source)
    if not recipe.name:
        recipe.name = pathlib.Path(source).stem
    return recipe


def parse_recipe(text: str, source: str = "recipe") -> Recipe:
    """A validated :class:`Recipe` from TOML text.

    Example:
        >>> parse_recipe('[model]\\nname = "bert"\\n[training]\\nstep = 3')
        Traceback (most recent call last):
        ...
        zoo.errors.UnknownNameError: recipe: unknown key 'training.step'; did you mean 'steps'? ...
    """
    return _validate(_parse_toml(text, source), source)


def _read_recipe_text(recipe) -> tuple:
    builtin = builtin_recipes()
    path = pathlib.Path(recipe)
    if path.is_file():
        try:
            return path.read_bytes().decode("utf-8"), str(path)
        except UnicodeDecodeError as error:
            raise ConfigError(f"{path} is not UTF-8 text (byte {error.start}); save the recipe as UTF-8") from None
    if str(recipe) in builtin:
        return builtin[str(recipe)].read_text(encoding="utf-8"), str(recipe)
    if path.suffix == ".toml" or "/" in str(recipe):
        raise ConfigError(f"no recipe file {str(recipe)!r}; check the path, or use a built-in: {', '.join(builtin)}")
    raise unknown_name("recipe", recipe, builtin)


def _parse_toml(text: str, source: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: invalid TOML: {error}") from None


def _apply_override(data: dict, item: str) -> None:
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"--set takes key=value (e.g. training.steps=100), got {item!r}")
    key, _, raw = item.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {item!r}: the key has an empty part; write e.g. training.steps=100")
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw
    table = data
    for part in parts[:-1]:
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise ConfigError(f"--set {item!r}: {part!r} is a value, not a table")
    table[parts[-1]] = value


def _validate(data: dict, source: str) -> Recipe:
    """Check every key and type of `data` and build the dataclasses."""
    recipe = _build(Recipe, data, source, "", special={"model", "objectives"})
    recipe.model = _model(data.get("model", {}), source)
    recipe.objectives = _objectives(data.get("objectives", {}), source)
    _check_values(recipe, source)
    return recipe


def _build(cls, data, source: str, prefix: str, special=frozenset()):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the recipe'} must be a table, got {data!r}")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown_key(source, prefix, key, fields)
        if key in special:
            continue
        expected = hints[key]
        if dataclasses.is_dataclass(expected):
            values[key] = _build(expected, value, source, f"{prefix}{key}.")
        else:
            values[key] = _typed(value, expected, source, f"{prefix}{key}")
    return cls(**values)


def _unknown_key(source, prefix, key, valid) -> UnknownNameError:
    nearest = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    hint = f"; did you mean {nearest[0]!r}?" if nearest else ";"
    where = f" of {prefix.rstrip('.')}" if prefix else ""
    return UnknownNameError(
        f"{source}: unknown key {prefix + key!r}{hint} valid keys{where}: {', '.join(sorted(valid))}"
    )


def _typed(value, expected, source: str, key: str):
    """`value` if it has the `expected` type (an int is a valid float), else ConfigError."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is tuple and isinstance(value, list):
        return tuple(value)
    if expected is dict:
        ok = isinstance(value, dict)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(
            f"{source}: {key} must be {_TYPE_NAMES[expected]}, got {_toml_type(value)} {value!r}"
        )
    return value


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a table",
               tuple: "an array"}


def _toml_type(value) -> str:
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
                       (dict, "a table"), (list, "an array")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _model(data, source: str) -> ModelSection:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: model must be a table, got {data!r}")
    own = {field.name for field in dataclasses.fields(ModelSection)} - {"overrides"}
    section = _build(ModelSection, {k: v for k, v in data.items() if k in own}, source, "model.")
    if not section.name:
        raise ConfigError(f"{source}: model.name is missing; set it to one of {', '.join(registry.model_names())}")
    family = registry.model_entry(section.name).value
    if section.size not in family.presets:
        raise unknown_name(f"{family.name} size (model.size)", section.size, family.presets)
    preset = family.presets[section.size]
    for key, value in data.items():
        if key in own:
            continue
        if key == "vocabulary_size":
            raise ConfigError(f"{source}: set the vocabulary size as tokenizer.vocabulary_size, not model.{key}")
        if key not in preset:
            raise _unknown_key(source, "model.", key, sorted(own | set(preset) - {"vocabulary_size"}))
        expected = type(preset[key]) if preset[key] is not None else type(value)
        section.overrides[key] = _typed(value, expected, source, f"model.{key}")
    return section


def _objectives(data, source: str) -> dict:
    import inspect

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: objectives must be a table of [objectives.NAME] tables, got {data!r}")
    objectives = {}
    for name, params in data.items():
        cls = registry.objective_entry(name).value
        if not isinstance(params, dict):
            raise ConfigError(f"{source}: objectives.{name} must be a table of its parameters, got {params!r}")
        accepted = inspect.signature(cls).parameters
        for key, value in params.items():
            if key not in accepted:
                raise _unknown_key(source, f"objectives.{name}.", key, list(accepted))
            default = accepted[key].default
            if default is not inspect.Parameter.empty and default is not None:
                _typed(value, type(default), source, f"objectives.{name}.{key}")
        objectives[name] = dict(params)
    return objectives


def _check_values(recipe: Recipe, source: str) -> None:
    training = recipe.training
    _choice(source, "data.split", recipe.data.split, SPLITS)
    _choice(source, "tokenizer.kind", recipe.tokenizer.kind, TOKENIZER_KINDS)
    _choice(source, "training.decay", training.decay, DECAYS)
    _choice(source, "training.precision", training.precision, PRECISIONS)
    for key in ("batch_size", "checkpoint_every", "keep_checkpoints", "log_every"):
        _positive(source, f"training.{key}", getattr(training, key))
    _positive(source, "tokenizer.vocabulary_size", recipe.tokenizer.vocabulary_size)
    _positive(source, "model.sequence_length", recipe.model.sequence_length)
    for key in ("steps", "epochs", "warmup_steps"):
        if getattr(training, key) < 0:
            raise ConfigError(f"{source}: training.{key} must be >= 0, got {getattr(training, key)}")
    if (training.steps > 0) == (training.epochs > 0):
        raise ConfigError(
            f"{source}: set exactly one of training.steps and training.epochs "
            f"(got steps={training.steps}, epochs={training.epochs})"
        )
    for key in ("learning_rate", "weight_decay", "clipnorm"):
        value = getattr(training, key)
        if not math.isfinite(value) or value < 0 or (key == "learning_rate" and value == 0):
            raise ConfigError(f"{source}: training.{key} must be a finite number {'> 0' if key == 'learning_rate' else '>= 0'}, got {value}")
    if not 0 <= training.seed < 2**32:
        raise ConfigError(f"{source}: training.seed must be between 0 and 2**32 - 1, got {training.seed}")
    _positive(source, "export.top_k", recipe.export.top_k)
    if recipe.export.max_new_tokens < 0:
        raise ConfigError(f"{source}: export.max_new_tokens must be >= 0, got {recipe.export.max_new_tokens}")
    if not recipe.name.replace("-", "").replace("_", "").replace(".", "").isalnum() and recipe.name:
        raise ConfigError(
            f"{source}: name {recipe.name!r} must be letters, digits, '-', '_' or '.', with at least one letter or "
            "digit (it names the run folder)"
        )


def _choice(source, key, value, choices) -> None:
    if value not in choices:
        raise ConfigError(
            f"{source}: {key} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}"
        )


def _positive(source, key, value) -> None:
    if value <= 0:
        raise ConfigError(f"{source}: {key} must be a positive integer, got {value}")


def _dump_toml(data: dict) -> str:
    """TOML text of plain data (scalars at the top, then one table per dict, nested by dotted names)."""
    lines = []
    _dump_table(data, "", lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _dump_table(data: dict, name: str, lines: list) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    if name and (scalars or not tables):
        lines.append(f"\n[{name}]")
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables.items():
        _dump_table(value, f"{name}.{_key(key)}" if name else _key(key), lines)


def _key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else _value(key)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise ConfigError(f"cannot write {value!r} to TOML")
