"""The runner behind ``zoo train``: strategy → tokenizer → build → data → fit → export.

``zoo.train(recipe)`` trains one run into ``runs/NAME`` (or ``out``)::

    runs/NAME/recipe.toml     the resolved recipe (overrides applied)
              tokenizer/      the run's tokenizer (trained, loaded or inherited)
              checkpoints/    step-NNNNNNNN/ folders (see zoo.checkpoints)
              logs/train/     TensorBoard scalars every training.log_every steps
              metrics.json    steps, final and validation metrics, loss history
              saved_model/    the export (zoo.export), taking raw text

Running the same command again resumes from the newest checkpoint: the
model, the optimizer (its step drives the learning-rate schedule) and the
position in the training stream are restored, so the run ends after the
configured number of steps, and only the steps after the last checkpoint
are trained twice. The stream is deterministic: the seeded pipeline repeated
pass after pass (each pass reshuffled and re-masked from the seed), and a
resumed run skips the batches already consumed.

A run may start from another run (``init_from = "runs/NAME"``): its
architecture, tokenizer and backbone weights, and its heads' weights too when
both train the same objectives (continued pretraining); the optimizer and
schedule start afresh. Or from a keras-hub preset folder (``from_preset`` on
a local path, a zoo ``tokenizer/`` inside it or ``tokenizer.path``): its
architecture and backbone weights.

Recipes whose objective takes a ``classes`` parameter (``pseudo_label``)
train on labeled text: ``data.labeled`` TSV files (``text<TAB>label`` per
line; the classes default to the labels found) plus ``data.unlabeled`` text
files, or, when both are empty, the default labeled corpus
(:func:`zoo.text.labeled.default_labeled_corpus`) with the labels of
a fifth of its training split kept and the rest unlabeled.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from zoo import registry
from zoo.checkpoints import RunCheckpoints, checkpoint_steps, restore_model
from zoo.distribute import STRATEGIES, get_strategy, is_chief
from zoo.errors import ConfigError, CorpusError, unknown_name
from zoo.export import check_serving_options, export
from zoo.files import atomic_write_text
from zoo.recipe import Recipe, load_recipe
from zoo.text.corpus import default_corpus, read_documents, split_held_out
from zoo.text.tokenizer import Tokenizer, default_tokenizer, train_tokenizer

RUNS_DIR = "runs"
#: Share of the training documents held out for validation when ``data.validation`` is empty.
HELD_OUT_FRACTION = 0.01
#: Share of the default labeled corpus whose labels a pseudo-label run keeps.
DEFAULT_LABELED_FRACTION = 0.2
#: Settings a resumed run may change.
RESUMABLE_CHANGES = ("strategy", "export")


def train(recipe, *, data=None, out=None, overrides=(), strategy=None, verbose="auto") -> dict:
    """Train `recipe` (a path, a built-in name or a :class:`zoo.recipe.Recipe`); return its metrics.

    Args:
        recipe: what to train.
        data: a glob of training text files, in place of ``data.train``.
        out: the run folder; default ``runs/NAME``. An existing run of the
            same recipe is resumed.
        overrides: ``key=value`` strings, as ``zoo train --set``.
        strategy: a :data:`zoo.distribute.STRATEGIES` name, in place of the recipe's.
        verbose: Keras's progress-bar setting.

    Returns:
        The contents written to ``metrics.json``.

    Example:
        >>> import tempfile, zoo
        >>> metrics = zoo.train("gpt-clm", out=tempfile.mkdtemp(), verbose=0, overrides=[
        ...     "model.num_layers=1", "model.sequence_length=16", "training.steps=2", "export.enabled=false"])
        >>> metrics["steps"]
        2
    """
    recipe = load_recipe(recipe, overrides)
    if data is not None:
        recipe.data.train = os.fspath(data)
    if strategy is not None:
        if strategy not in STRATEGIES:
            raise unknown_name("strategy", strategy, STRATEGIES)
        recipe.strategy = strategy
    run_dir = pathlib.Path(out) if out is not None else pathlib.Path(RUNS_DIR) / recipe.name
    source = _init_source(recipe)
    inputs = _training_inputs(recipe)
    _check_resumable(run_dir, recipe)
    started = time.monotonic()
    distribution = get_strategy(recipe.strategy)
    chief = is_chief(distribution)
    multi_worker = isinstance(distribution, tf.distribute.MultiWorkerMirroredStrategy)
    tokenizer = _tokenizer(recipe, run_dir, source, inputs, multi_worker=multi_worker)
    source_weights = _source_weights(source, tokenizer) if source and not checkpoint_steps(run_dir / "checkpoints") else None
    training = recipe.training
    keras.utils.set_random_seed(training.seed)  # initial weights and dropout repeat from the seed
    with distribution.scope():
        task = build_task(recipe, tokenizer)
        one_pass = _one_pass(task, inputs["train"], training.batch_size)
        if training.steps:
            _check_not_empty(one_pass)
            total_steps = training.steps
        else:
            total_steps = training.epochs * _count_batches(one_pass)
        if recipe.export.enabled:  # the export ends the run: refuse its options before training
            check_serving_options(task.spec, top_k=recipe.export.top_k, max_new_tokens=recipe.export.max_new_tokens)
        task.compile(optimizer=make_optimizer(training, total_steps))
        task.optimizer.build(task.trainable_variables)
        if source_weights is not None:
            _load_weights(task, source_weights, recipe.init_from)
    # The model builds and the data makes batches: from here on the run folder is written to.
    if chief:
        atomic_write_text(run_dir / "recipe.toml", recipe.to_toml())
        if not (run_dir / "tokenizer").is_dir():
            tokenizer.save(run_dir / "tokenizer")
    checkpoints = RunCheckpoints(run_dir / "checkpoints", task, keep=training.keep_checkpoints, chief=chief)
    checkpoints.remove_partial_writes()
    state = checkpoints.restore() or {"step": 0, "data_position": 0}
    start = min(state["step"], total_steps)
    writer = tf.summary.create_file_writer(str(run_dir / "logs" / "train")) if chief else None
    progress = _Progress(start=start, checkpoints=checkpoints, every=training.checkpoint_every,
                         log_every=training.log_every, writer=writer, schedule=task.optimizer.learning_rate)
    logs = {}
    if start < total_steps:
        stream = _stream(task, inputs["train"], training.batch_size, state["data_position"])
        history = task.fit(stream, epochs=1, steps_per_epoch=total_steps - start, callbacks=[progress],
                           verbose=verbose)
        logs = {key: float(values[-1]) for key, values in history.history.items()}
        if progress.step % training.checkpoint_every:
            checkpoints.save(step=progress.step, data_position=progress.step)
    validation = {}
    if inputs["validation"] is not None:
        validation = task.evaluate(*inputs["validation"], batch_size=training.batch_size, verbose=0,
                                   return_dict=True)
    metrics = {
        "recipe": recipe.name,
        "steps": max(start, progress.step),
        "resumed_from": start,
        "strategy": recipe.strategy,
        "replicas": distribution.num_replicas_in_sync,
        "train": logs,
        "validation": {key: float(value) for key, value in validation.items()},
        "history": progress.history,
        "weights_digest": weights_digest(task),
        "seconds": round(time.monotonic() - started, 1),
    }
    if chief:
        atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        if recipe.export.enabled:
            export_run(run_dir)
    return metrics


def export_run(run_dir, out=None) -> pathlib.Path:
    """Export the newest checkpoint of a run as a SavedModel taking raw text; the export folder.

    The model is rebuilt from the run's ``recipe.toml`` and ``tokenizer/``
    (outside any strategy) and written with :func:`zoo.export` to `out`,
    default ``RUN_DIR/saved_model``. ``zoo train`` ends with this step.

    Example:
        >>> export_run("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        zoo.errors.ConfigError: /nonexistent is not a zoo run (no recipe.toml); ...
    """
    run_dir = pathlib.Path(run_dir)
    task = load_run(run_dir)
    recipe = load_recipe(run_dir / "recipe.toml")
    path = pathlib.Path(out) if out is not None else run_dir / "saved_model"
    return export(task, path, top_k=recipe.export.top_k, max_new_tokens=recipe.export.max_new_tokens)


def build_task(recipe: Recipe, tokenizer):
    """The task a recipe describes, built with `tokenizer` (in the current strategy's scope).

    Example:
        >>> import zoo.recipe
        >>> from zoo.text.tokenizer import default_tokenizer
        >>> recipe = zoo.recipe.load_recipe("gpt-clm", ["model.num_layers=1"])
        >>> build_task(recipe, default_tokenizer("byte_bpe")).spec.family
        'gpt'
    """
    from zoo.builder import build

    objectives = {name: dict(params) for name, params in recipe.objectives.items()} or None
    return build(
        recipe.model.name, objectives, size=recipe.model.size, tokenizer=tokenizer,
        sequence_length=recipe.model.sequence_length, seed=recipe.training.seed,
        precision=recipe.training.precision, **recipe.model.overrides,
    )


def load_run(run_dir):
    """The trained task of a run folder: its recipe's model with its newest checkpoint's weights.

    Example:
        >>> load_run("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        zoo.errors.ConfigError: /nonexistent is not a zoo run (no recipe.toml); ...
    """
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / "recipe.toml").is_file():
        raise ConfigError(f"{run_dir} is not a zoo run (no recipe.toml); pass a folder written by zoo train")
    return _load_run_task(load_recipe(run_dir / "recipe.toml"), Tokenizer.load(run_dir / "tokenizer"), run_dir)


def _load_run_task(recipe: Recipe, tokenizer, run_dir: pathlib.Path):
    """The task of `recipe` with the weights of the newest checkpoint in ``run_dir/checkpoints``.

    It is compiled with the run's kind of optimizer, built, so that the
    checkpoint's optimizer entries line up with this one's.
    """
    task = build_task(recipe, tokenizer)
    task.compile(optimizer=make_optimizer(recipe.training, max(recipe.training.steps, 1)))
    task.optimizer.build(task.trainable_variables)
    restore_model(run_dir / "checkpoints", task)
    return task


@keras.saving.register_keras_serializable(package="zoo")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak` over `warmup_steps`, then `decay` to 0 at `total_steps`.

    ``decay`` is ``cosine``, ``linear`` or ``constant`` (stay at `peak`).

    Example:
        >>> schedule = WarmupDecay(1.0, warmup_steps=2, total_steps=4, decay="linear")
        >>> [round(float(schedule(step)), 2) for step in range(5)]
        [0.0, 0.5, 1.0, 0.5, 0.0]
    """

    def __init__(self, peak, warmup_steps, total_steps, decay="cosine"):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.decay = decay

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = keras.ops.minimum(step / max(self.warmup_steps, 1), 1.0) if self.warmup_steps else 1.0
        progress = keras.ops.clip(
            (step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0
        )
        if self.decay == "cosine":
            factor = 0.5 * (1.0 + keras.ops.cos(math.pi * progress))
        elif self.decay == "linear":
            factor = 1.0 - progress
        else:
            factor = 1.0
        return self.peak * warmup * factor

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "decay": self.decay}


def make_optimizer(training, total_steps: int) -> keras.optimizers.Optimizer:
    """AdamW with the recipe's warmup-and-decay schedule, weight decay (not on biases and norms) and clipping.

    Example:
        >>> from zoo.recipe import TrainingSection
        >>> make_optimizer(TrainingSection(steps=10), 10).global_clipnorm
        1.0
    """
    schedule = WarmupDecay(training.learning_rate, min(training.warmup_steps, total_steps), total_steps,
                           training.decay)
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=training.weight_decay, global_clipnorm=training.clipnorm or None
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def weights_digest(model) -> str:
    """A short hash of every weight of `model`: equal digests, equal weights.

    Example:
        >>> len(weights_digest(keras.layers.Dense(2)))
        16
    """
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]


# What tensorboard's scalar summaries carry: written with core TensorFlow, so
# the logs need no tensorboard package to write (only to view).
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
)


class _Progress(keras.callbacks.Callback):
    """Counts global steps; logs to TensorBoard and writes checkpoints at their intervals."""

    def __init__(self, *, start, checkpoints, every, log_every, writer, schedule):
        super().__init__()
        self.step = start
        self._start = start
        self._checkpoints = checkpoints
        self._every = every
        self._log_every = log_every
        self._writer = writer
        self._schedule = schedule
        self.history = []

    def on_train_batch_end(self, batch, logs=None):
        self.step = self._start + batch + 1
        if self.step % self._log_every == 0:
            record = {key: float(value) for key, value in (logs or {}).items()}
            self.history.append({"step": self.step, **record})
            if self._writer is not None:
                if callable(self._schedule):
                    record = {**record, "learning_rate": float(self._schedule(self.step))}
                with self._writer.as_default(step=self.step):
                    for key, value in record.items():
                        tf.summary.write(key, tf.constant(value, tf.float32), metadata=_SCALAR_METADATA)
                self._writer.flush()
        if self.step % self._every == 0:
            self._checkpoints.save(step=self.step, data_position=self.step)


# -- data ----------------------------------------------------------------------


def _own_format_objectives(recipe: Recipe) -> list:
    """The recipe's objectives that classify labeled texts: those with a ``classes`` parameter."""
    return [name for name in recipe.objectives
            if "classes" in inspect.signature(registry.objective_entry(name).value).parameters]


def _training_inputs(recipe: Recipe) -> dict:
    """``train``: what the pipeline takes; ``validation``: evaluate's arguments, or None."""
    data = recipe.data
    if _own_format_objectives(recipe):
        return _labeled_inputs(recipe)
    if data.labeled or data.unlabeled:
        raise ConfigError(
            "data.labeled and data.unlabeled are for objectives that train on labeled text (pseudo_label); "
            "put the text in data.train"
        )
    if data.train:
        documents = read_documents(data.train, split=data.split)
        held_out = []
        if not data.validation:
            documents, held_out = split_held_out(documents, HELD_OUT_FRACTION)
    else:
        documents, held_out = split_held_out(default_corpus(), HELD_OUT_FRACTION)
    if data.validation:
        held_out = read_documents(data.validation, split=data.split)
    if not documents:
        raise CorpusError("every training document was held out; give more text or set data.validation")
    return {"train": documents, "validation": (held_out,) if held_out else None, "text": documents}


def _labeled_inputs(recipe: Recipe) -> dict:
    data, seed = recipe.data, recipe.training.seed
    if data.train:
        raise ConfigError("this recipe trains on labeled text: set data.labeled (TSV) and data.unlabeled, not data.train")
    if data.labeled:
        texts, labels = _read_labeled(data.labeled)
        unlabeled = read_documents(data.unlabeled, split=data.split) if data.unlabeled else None
        validation = _read_labeled(data.validation) if data.validation else None
        for name in _own_format_objectives(recipe):
            recipe.objectives[name].setdefault("classes", sorted(set(labels)))
    else:
        from zoo.text.labeled import default_labeled_corpus, scarce_labels

        all_texts, all_labels, classes = default_labeled_corpus()
        held_out = set(split_held_out(all_texts, 0.1)[1])
        train = [(t, label) for t, label in zip(all_texts, all_labels) if t not in held_out]
        texts, labels, unlabeled = scarce_labels([t for t, _ in train], [label for _, label in train],
                                                 DEFAULT_LABELED_FRACTION, seed=seed)
        if data.unlabeled:
            unlabeled = read_documents(data.unlabeled, split=data.split)
        validation = ([t for t in all_texts if t in held_out],
                      [label for t, label in zip(all_texts, all_labels) if t in held_out])
        for name in _own_format_objectives(recipe):
            recipe.objectives[name].setdefault("classes", list(classes))
    x = {"labeled": (texts, labels), "unlabeled": unlabeled} if unlabeled else (texts, labels)
    text = list(texts) + list(unlabeled or [])
    return {"train": x, "validation": validation, "text": text}


def _read_labeled(pattern) -> tuple:
    """``(texts, labels)`` from TSV files: one ``text<TAB>label`` per line."""
    texts, labels = [], []
    for number, line in enumerate(read_documents(pattern, split="line"), 1):
        text, tab, label = line.rpartition("\t")
        if not tab or not text.strip() or not label.strip():
            raise CorpusError(
                f"labeled line {number} of {pattern} is not 'text<TAB>label': {line[:60]!r}; "
                "write one example per line, the label after the last TAB"
            )
        texts.append(text.strip())
        labels.append(label.strip())
    return texts, labels


def _one_pass(task, train, batch_size: int) -> tf.data.Dataset:
    """One seeded pass of training batches (reshuffled and re-masked on every repetition)."""
    for objective in task.objectives:
        x, y = (train, None) if not isinstance(train, tuple) else train
        dataset = objective.dataset(task, x, y, batch_size=batch_size, training=True)
        if dataset is not None:
            return dataset
    return task.preprocessor.training_dataset(train, batch_size)


def _stream(task, train, batch_size: int, position: int) -> tf.data.Dataset:
    """The endless training stream from batch `position` on: passes repeated, each reshuffled and re-masked.

    The pipeline is made inside ``flat_map``, so every iterator over the
    stream starts from the seeds' first pass: Keras may open an iterator to
    build the model before training (it does under a strategy), and the
    batches must not depend on it.
    """
    return tf.data.Dataset.from_tensors(0).flat_map(
        lambda _: _one_pass(task, train, batch_size).repeat().skip(position)
    )


def _check_not_empty(dataset) -> None:
    if not any(True for _ in dataset.take(1)):
        raise CorpusError("the training text makes no batch; give more text or lower training.batch_size")


def _count_batches(dataset) -> int:
    count = int(dataset.reduce(np.int64(0), lambda count, _: count + 1))
    if count == 0:
        raise CorpusError("the training text makes no batch; give more text or lower training.batch_size")
    return count


# -- tokenizer and initialisation ---------------------------------------------------


def _tokenizer(recipe, run_dir, source, inputs, *, multi_worker: bool):
    """The run's own tokenizer, else the source's, else ``tokenizer.path``, else a trained one."""
    if (run_dir / "tokenizer").is_dir():
        return Tokenizer.load(run_dir / "tokenizer")
    if source is not None:
        return source["tokenizer"]
    if recipe.tokenizer.path:
        return Tokenizer.load(recipe.tokenizer.path)
    kind = recipe.tokenizer.kind or registry.model_entry(recipe.model.name).value.tokenizer_kind
    uses_default_corpus = not (recipe.data.train or recipe.data.labeled or recipe.data.unlabeled)
    if uses_default_corpus:
        return default_tokenizer(kind, recipe.tokenizer.vocabulary_size)
    if multi_worker:
        raise ConfigError(
            "a multi-worker run cannot train its tokenizer (each worker would train another); "
            "train one first and set tokenizer.path"
        )
    return train_tokenizer(inputs["text"], kind, recipe.tokenizer.vocabulary_size)


def _init_source(recipe: Recipe):
    """Read ``init_from`` (a run or a keras-hub preset folder) and take its architecture into the recipe."""
    if not recipe.init_from:
        return None
    path = pathlib.Path(recipe.init_from)
    family = registry.model_entry(recipe.model.name).value
    if (path / "recipe.toml").is_file():
        source = load_recipe(path / "recipe.toml")
        if source.model.name != recipe.model.name:
            raise ConfigError(
                f"init_from {path} is a {source.model.name} run but this recipe trains {recipe.model.name}; "
                f"set model.name = {source.model.name!r} or start from a {recipe.model.name} run"
            )
        if not checkpoint_steps(path / "checkpoints"):
            raise ConfigError(f"init_from {path} has no checkpoint yet; train it first (zoo train ... --out {path})")
        recipe.model.size = source.model.size
        recipe.model.overrides = {**source.model.overrides, **recipe.model.overrides}
        return {"kind": "run", "path": path, "recipe": source, "tokenizer": Tokenizer.load(path / "tokenizer"),
                "same_objectives": source.objectives == recipe.objectives}
    if (path / "config.json").is_file():
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))["config"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"init_from {path}: unreadable keras-hub config.json ({error})") from None
        tokenizer_path = path / "tokenizer" if (path / "tokenizer").is_dir() else recipe.tokenizer.path
        if not tokenizer_path:
            raise ConfigError(
                f"init_from {path} has no zoo tokenizer/ folder; set tokenizer.path to the tokenizer its "
                "backbone was trained with"
            )
        preset = family.presets[recipe.model.size]
        architecture = {key: value for key, value in config.items() if key in preset and key != "vocabulary_size"}
        recipe.model.overrides = {**architecture, **recipe.model.overrides}
        return {"kind": "preset", "path": path, "tokenizer": Tokenizer.load(tokenizer_path)}
    raise ConfigError(
        f"init_from {path} is neither a zoo run (no recipe.toml) nor a keras-hub preset folder (no config.json)"
    )


def _source_weights(source, tokenizer) -> list:
    """The backbone weights to start from (read before any strategy scope)."""
    if source["kind"] == "run":
        source_task = _load_run_task(source["recipe"], tokenizer, source["path"])
        if source["same_objectives"]:
            return {"task": source_task.get_weights()}
        return {"backbone": source_task.backbone.get_weights()}
    import keras_hub

    return {"backbone": keras_hub.models.Backbone.from_preset(str(source["path"])).get_weights()}


def _load_weights(task, weights, init_from) -> None:
    try:
        if "task" in weights:
            task.set_weights(weights["task"])
        else:
            task.backbone.set_weights(weights["backbone"])
    except ValueError as error:
        raise ConfigError(
            f"the backbone of init_from {init_from} does not fit this model ({error}); "
            "drop the architecture overrides that differ from it"
        ) from None


def _check_resumable(run_dir: pathlib.Path, recipe: Recipe) -> None:
    """An existing run folder may only be resumed with the same recipe (strategy and export aside).

    A folder that is not a run must be empty (hidden files aside): a run
    writes ``checkpoints/``, ``saved_model/`` and ``metrics.json`` into it.
    """
    saved = run_dir / "recipe.toml"
    if not saved.is_file():
        if run_dir.exists() and not run_dir.is_dir():
            raise ConfigError(f"--out {run_dir} is a file; give a folder for the run")
        if run_dir.is_dir() and any(not entry.name.startswith(".") for entry in run_dir.iterdir()):
            raise ConfigError(
                f"--out {run_dir} holds files but no zoo run (no recipe.toml), and a run would write over them; "
                "give a new or empty folder"
            )
        return
    previous = load_recipe(saved).to_dict()
    current = recipe.to_dict()
    for key in RESUMABLE_CHANGES:
        previous.pop(key, None)
        current.pop(key, None)
    difference = _first_difference(previous, current)
    if difference:
        key, old, new = difference
        raise ConfigError(
            f"{run_dir} holds a run of another recipe ({key} was {old!r}, now {new!r}); "
            "rerun it with the same settings to resume, or pass --out with a new folder"
        )


def _first_difference(old, new, prefix=""):
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b and not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and list(a) == list(b)):
            return f"{prefix}{key}", a, b
    return None
