"""The task model: backbone + objective heads + preprocessing.

A :class:`Task` is a functional ``keras.Model`` whose outputs, labels,
losses and metrics are dicts keyed by objective name. Like keras-hub tasks,
its ``fit``, ``evaluate`` and ``predict`` accept raw strings (a list, an
array or a ``tf.data.Dataset`` of strings) and run the preprocessing in
``tf.data``; already-preprocessed datasets pass through untouched.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import types
import warnings

import keras
import tensorflow as tf

from zoo import registry
from zoo.compiled_optimizer import compile_updates
from zoo.errors import ConfigError, UnknownNameError, ZooError, check_integer
from zoo.files import atomic_file
from zoo.fused_gelu import fuse_gelu
from zoo.fused_layer_norm import fuse_layer_norm
from zoo.hashed_dropout import use_hashed_dropout
from zoo.head_major_attention import use_head_major_attention
from zoo.objective import Objective
from zoo.precision import has_accelerator
from zoo.projections import flatten_projections
from zoo.text.pipeline import Preprocessor
from zoo.text.tokenizer import Tokenizer
from zoo.tied_projection import measure_tied_projections
from zoo.unread_outputs import freeze_unread_outputs
from zoo.weight_decay import exclude_again, weight_decay_exclusions


#: ``predict`` tokenizes up to this many strings in one call; more stream through ``tf.data`` in batches.
PREDICT_ARRAY_LIMIT = 4096


def _is_raw_text(data) -> bool:
    """Whether `data` is text for the preprocessing, which also names what is wrong with a bare string or numbers.

    Refuses by name what is neither text nor Keras's own input: None, and
    lists of lists.
    """
    if data is None:
        raise ConfigError("no input given (None); pass a list of strings or a tf.data.Dataset of strings")
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        return isinstance(spec, tf.TensorSpec) and spec.dtype == tf.string
    if isinstance(data, (str, bytes)):
        return True
    if isinstance(data, (list, tuple)):
        if len(data) and isinstance(data[0], (list, tuple)):
            raise ConfigError("expected a flat list of strings, got a list of lists; join or flatten the texts")
        return len(data) == 0 or isinstance(data[0], (str, bytes, int, float))
    if isinstance(data, tf.Tensor):
        if data.dtype == tf.string and data.shape.rank == 0:
            raise ConfigError("expected a list of strings, got a single string; wrap it in a list")
        return data.dtype == tf.string
    return hasattr(data, "dtype") and getattr(data.dtype, "kind", "") in ("U", "S", "O")


@keras.saving.register_keras_serializable(package="zoo")
class Task(keras.Model):
    """Backbone plus one head per objective, trained on raw text.

    A task made by :func:`zoo.build` saves whole in Keras's format:
    ``model.save("task.keras")`` writes its build arguments, tokenizer,
    objectives' arguments, weights and optimizer state, and
    ``keras.saving.load_model("task.keras")`` (after ``import zoo``, and
    with the plugins of its objectives installed) builds it again and
    continues where it was.

    Args:
        backbone: functional backbone with named inputs and outputs.
        spec: its :class:`zoo.spec.ModelSpec`.
        objectives: :class:`zoo.Objective` instances (distinct names).
        tokenizer: the :class:`zoo.text.tokenizer.Tokenizer` of the backbone.
        sequence_length: length of every example.
        seed: seed of the data pipeline (shuffling and corruption).
        build_arguments: the :func:`zoo.build` arguments that make this
            task again (``model``, ``size``, ``sequence_length``, ``seed``,
            ``precision``, ``overrides``), for saving; ``None`` where the
            task was not made by ``zoo.build``.

    Use :func:`zoo.build` rather than this constructor.

    Example:
        >>> model = zoo.build("bert", objective="mlm")  # doctest: +SKIP
        >>> model.fit(["raw text", "more raw text"] * 100, batch_size=8)  # doctest: +SKIP
    """

    def __init__(self, backbone, spec, objectives, tokenizer, sequence_length, *, seed=0, build_arguments=None,
                 **kwargs):
        names = [objective.name for objective in objectives]
        if len(set(names)) != len(names):
            raise ConfigError(f"each objective may appear once, got {names}")
        inputs = {name: backbone.input[name] for name in spec.input_names}
        for objective in objectives:
            inputs.update(objective.head_inputs(spec, sequence_length))
        outputs = backbone({name: inputs[name] for name in spec.input_names})
        if not isinstance(outputs, dict):
            outputs = {"sequence_output": outputs}
        heads = {objective.name: objective.build_head(outputs, inputs, spec) for objective in objectives}
        super().__init__(inputs=inputs, outputs=heads, **kwargs)
        freeze_unread_outputs(backbone, outputs, heads)  # e.g. BERT's pooler under masked LM alone
        flatten_projections(backbone)  # same arithmetic, faster on CPU (see zoo.projections)
        fuse_gelu(backbone)  # bias and GELU in one compiled pass while training (see zoo.fused_gelu)
        use_hashed_dropout(backbone)  # dropout masks from a compiled hash, not Philox (see zoo.hashed_dropout)
        use_head_major_attention(backbone)  # attention matmuls without the einsum transposes (see zoo.head_major_attention)
        fuse_layer_norm(backbone)  # layer norms in one compiled pass each way while training (see zoo.fused_layer_norm)
        measure_tied_projections(backbone)  # the tied output projection on the faster kernel (see zoo.tied_projection)
        self.backbone = backbone
        self.spec = spec
        self.objectives = list(objectives)
        self.tokenizer = tokenizer
        self.sequence_length = int(sequence_length)
        self.preprocessor = Preprocessor(
            tokenizer, spec, self.objectives, self.sequence_length, tuple(inputs), seed=seed
        )
        stepping = [o for o in self.objectives if type(o).train_step is not Objective.train_step]
        if len(stepping) > 1:
            raise ConfigError(
                f"{' and '.join(o.name for o in stepping)} each replace the training step; "
                "train them in separate tasks or keep one of them"
            )
        self._step_objective = stepping[0] if stepping else None
        # Read-only mappings, which Keras's attribute tracking leaves unwrapped: the objectives'
        # states stay out of the task's weights and exports (see objective_states).
        self.build_arguments = None if build_arguments is None else types.MappingProxyType(dict(build_arguments))
        self._objective_states = types.MappingProxyType(_objective_states(self))

    @property
    def objective_states(self) -> dict:
        """Each objective's training state besides the weights (:meth:`zoo.Objective.build_state`), by name.

        ``zoo train``'s checkpoints carry it, and so does a Keras-format save:
        Keras saves the layers found on a model's attributes, this one included.

        Example:
            >>> import zoo
            >>> task = zoo.build("lstm_lm", objective={"pseudo_label": {"classes": ["a", "b"], "teacher": "ema"}},
            ...                  num_layers=1)
            >>> list(task.objective_states)
            ['pseudo_label']
        """
        return dict(self._objective_states)

    def get_config(self) -> dict:
        """How to make this task again: its build and compile arguments, objectives and tokenizer, as JSON values.

        The compile arguments are those ``compile`` was given, ``"auto"``
        where zoo chose (AdamW without weight decay on biases and norms, the
        objectives' losses and metrics), or None for a task never compiled;
        beside them, what a given optimizer leaves out of weight decay
        (:mod:`zoo.weight_decay`), which Keras's optimizer config drops.
        """
        if self.build_arguments is None:
            raise ConfigError(
                "this Task was not made by zoo.build, so it cannot be saved whole; "
                "make it with zoo.build, or save its weights with save_weights"
            )
        for objective in self.objectives:
            _check_registered(objective)
        return {
            **self.build_arguments,
            "objectives": [{"name": objective.name, "config": objective.get_config()} for objective in self.objectives],
            "tokenizer": self.tokenizer.get_config(),
            "compile": keras.saving.serialize_keras_object(dict(self._compile_arguments)) if self.compiled else None,
            "weight_decay_exclusions": weight_decay_exclusions(self._compile_arguments["optimizer"],
                                                               self.trainable_variables) if self.compiled else None,
        }

    @classmethod
    def from_config(cls, config: dict) -> "Task":
        """The task of :meth:`get_config`'s `config`, with new weights and not compiled.

        :meth:`compile_from_config` compiles it with the saved compile
        arguments; ``keras.saving.load_model`` calls it unless given
        ``compile=False``.
        """
        from zoo.builder import assemble  # zoo.builder makes tasks, so it imports this module

        config = dict(config)
        objectives = {item["name"]: item["config"] for item in config.pop("objectives")}
        tokenizer = Tokenizer.from_config(config.pop("tokenizer"))
        overrides = config.pop("overrides")
        compile_arguments = config.pop("compile")
        exclusions = config.pop("weight_decay_exclusions", None)  # absent from files saved before it was kept
        try:
            task = assemble(config.pop("model"), objectives, tokenizer=tokenizer, **config, **overrides)
        except UnknownNameError as error:
            raise UnknownNameError(
                f"cannot rebuild the saved task: {error}. Install the plugin that provides it "
                "(`zoo list` shows what is installed)"
            ) from None
        task._saved_compile = (compile_arguments, exclusions)
        return task

    def save(self, filepath, overwrite=True, **kwargs):
        """``keras.Model.save``; a local ``.keras`` file is written under a temporary name, then renamed.

        So a save that fails (an objective that cannot be saved, a full
        disk, a crash) leaves an existing file at `filepath` as it was.
        """
        local = isinstance(filepath, (str, os.PathLike)) and "://" not in str(filepath)
        zipped = kwargs.get("zipped") is not False
        if local and (not str(filepath).endswith(".keras") or (zipped and pathlib.Path(filepath).is_dir())):
            raise ConfigError(
                f"a task saves whole as one .keras file, not {filepath}; give a file path ending in .keras "
                "(or use save_weights with a .weights.h5 path for the weights alone)"
            )
        self.get_config()  # the errors a save can name, before any file is opened
        if self.compiled and not self.optimizer.built:  # so that its state is saved, empty or not
            self.optimizer.build(self.trainable_variables)
        if not (local and overwrite and zipped):
            return super().save(filepath, overwrite=overwrite, **kwargs)
        with atomic_file(pathlib.Path(filepath)) as temporary:
            super().save(temporary, **kwargs)
        return None

    def compile_from_config(self, config: dict) -> None:
        """Compile with the arguments the task's own config carries, and make the optimizer's variables.

        Keras loads the saved optimizer state into those variables next. The
        compile config Keras passes (losses and metrics resolved) is only
        used for a task that :meth:`from_config` did not make; it stays in
        the file for ``keras.models.clone_model``, which compiles a plain
        Keras copy from it.
        """
        saved = getattr(self, "_saved_compile", None)
        if saved is None:
            self.compile(**keras.saving.deserialize_keras_object(config))
        else:
            arguments, exclusions = saved
            arguments = keras.saving.deserialize_keras_object(arguments)
            exclude_again(arguments["optimizer"], exclusions, self.trainable_variables)
            self.compile(**arguments)
        self.optimizer.build(self.trainable_variables)

    def compile(self, optimizer="auto", loss="auto", loss_weights="auto", weighted_metrics="auto", **kwargs):
        """Compile with each objective's loss, weight and metrics by default.

        ``optimizer="auto"`` is AdamW (learning rate 1e-3, weight decay 0.01
        except on biases and normalisation scales, global gradient norm
        clipped at 1.0). ``jit_compile`` defaults to Keras's ``"auto"`` on
        GPU and TPU and to no XLA on CPU, where XLA is slower; a step that
        is not compiled as a whole still runs its optimizer update as one
        XLA function (see :mod:`zoo.compiled_optimizer`).
        """
        self._compile_arguments = types.MappingProxyType(dict(
            optimizer=optimizer, loss=loss, loss_weights=loss_weights, weighted_metrics=weighted_metrics, **kwargs
        ))
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.01, global_clipnorm=1.0)
            optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        if loss == "auto":
            loss = {objective.name: objective.loss() for objective in self.objectives}
        if loss_weights == "auto":
            loss_weights = {objective.name: objective.loss_weight for objective in self.objectives}
        if weighted_metrics == "auto":
            weighted_metrics = {objective.name: objective.metrics() for objective in self.objectives}
            if len(self.objectives) == 1:  # Keras prefixes output names only when there are several
                for objective in self.objectives:
                    for metric in weighted_metrics[objective.name]:
                        metric.name = f"{objective.name}_{metric.name}"
        kwargs.setdefault("jit_compile", "auto" if has_accelerator() else False)
        super().compile(
            optimizer=optimizer, loss=loss, loss_weights=loss_weights, weighted_metrics=weighted_metrics, **kwargs
        )
        if not self.jit_compile:
            compile_updates(self.optimizer)

    def fit(self, x=None, y=None, batch_size=None, validation_data=None, **kwargs):
        """``keras.Model.fit`` that also takes raw strings (packed and corrupted in tf.data).

        An objective may take its own format instead (:meth:`zoo.Objective.dataset`):
        ``pseudo_label`` takes ``{"labeled": (texts, labels), "unlabeled": texts}``.
        """
        if batch_size is not None:
            check_integer("batch_size", batch_size, 1)
        own = self._objective_dataset(x, y, batch_size or 32, training=True)
        if own is not None:
            x, y, batch_size = own, None, None
            kwargs["shuffle"] = False  # the objective's pipeline shuffles itself
        elif _is_raw_text(x):
            _reject_labels(y)
            if kwargs.get("validation_split"):
                raise ConfigError(
                    "validation_split takes arrays; for raw text pass the held-out texts as validation_data"
                )
            x = self.preprocessor.training_dataset(x, batch_size or 32)
            batch_size = None
            kwargs["shuffle"] = False  # the pipeline shuffles documents itself
        own = None if validation_data is None else self._objective_dataset(validation_data, None, 32, training=False)
        if own is not None:
            validation_data = own
        elif validation_data is not None and _is_raw_text(validation_data):
            validation_data = self.preprocessor.training_dataset(validation_data, 32, shuffle=False)
        if isinstance(x, tf.data.Dataset):
            kwargs.setdefault("shuffle", False)  # Keras cannot shuffle a dataset; it would only warn so
        with _ends_of_data_expected(kwargs.get("steps_per_epoch")):
            return super().fit(x, y, batch_size=batch_size, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        """``keras.Model.evaluate`` that also takes raw strings (same corruption every call)."""
        if batch_size is not None:
            check_integer("batch_size", batch_size, 1)
        own = self._objective_dataset(x, y, batch_size or 32, training=False)
        if own is not None:
            x, y, batch_size = own, None, None
        elif _is_raw_text(x):
            _reject_labels(y)
            x = self.preprocessor.training_dataset(x, batch_size or 32, shuffle=False)
            batch_size = None
        with _ends_of_data_expected(kwargs.get("steps")):
            return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        """``keras.Model.predict`` on raw strings: one row per string, in order.

        Returns a dict keyed by objective name: ``mlm`` gives logits
        ``[n, max_predictions, vocabulary_size]`` at the mask tokens written
        in each text (in order; rows past the last mask are not meaningful);
        ``clm`` gives next-token logits ``[n, sequence_length, vocabulary_size]``;
        ``pseudo_label`` gives class logits ``[n, len(classes)]``; ``nsp``
        gives is-next logits ``[n, 1]`` of each text as A with an empty B
        (score pairs with its serving endpoint, which takes ``text`` and
        ``next_text``).

        A list of up to :data:`PREDICT_ARRAY_LIMIT` strings is tokenized by
        one function traced once per task (a call on a few strings takes
        milliseconds more than the model); a ``tf.data.Dataset`` of strings,
        or a longer list, streams through ``tf.data`` in batches.
        """
        if batch_size is not None:
            check_integer("batch_size", batch_size, 1)
        if _is_raw_text(x):
            if isinstance(x, tf.data.Dataset) or len(x) > PREDICT_ARRAY_LIMIT:
                x = self.preprocessor.inference_dataset(x, batch_size or 32)
                batch_size = None
            else:
                x = self.preprocessor.inference_arrays(x)
        with _ends_of_data_expected(kwargs.get("steps")):
            return super().predict(x, batch_size=batch_size, **kwargs)

    def make_train_function(self, force=False):
        """Keras's, once the optimizer's variables are made: a first step that made them would be traced twice.

        ``fit`` and ``train_on_batch`` call it before their first step; the
        variables are made for the weights trainable then, as Keras would.
        """
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)
        return super().make_train_function(force)

    def train_step(self, data):
        """Keras's step, or the one objective's :meth:`zoo.Objective.train_step` that replaces it."""
        if self._step_objective is not None:
            return self._step_objective.train_step(self, data)
        return super().train_step(data)

    def minimize(self, tape, loss, batch_size):
        """Apply the gradients of `loss`, recorded on `tape`, and log it as ``loss``: the end of a step.

        For :meth:`zoo.Objective.train_step` overrides. `loss` is a
        per-replica loss as ``compute_loss`` returns it (already divided by
        the number of replicas); `batch_size` weighs it in the logged mean.
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self._loss_tracker.update_state(loss * replicas, sample_weight=batch_size)
        with tape:
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))

    def _objective_dataset(self, x, y, batch_size, *, training):
        for objective in self.objectives:
            dataset = objective.dataset(self, x, y, batch_size=batch_size, training=training)
            if dataset is not None:
                return dataset
        return None


@contextlib.contextmanager
def _ends_of_data_expected(steps):
    """Without a step count, a dataset of unknown length ending is the end of a pass, not lost data.

    Keras warns "Your input ran out of data" whenever such a dataset ends
    (zoo's packed pipelines have no length known in advance), although no
    number of steps was asked for. The warning stays where one was.
    """
    with warnings.catch_warnings():
        if steps is None:
            warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
        yield


def _objective_states(task) -> dict:
    states = {}
    for objective in task.objectives:
        state = objective.build_state(task)
        if state is None:
            continue
        if not isinstance(state, keras.layers.Layer) or not state.built:
            raise ConfigError(
                f"{objective.name}: build_state returned {type(state).__name__}; "
                "return a built keras.layers.Layer holding the state, or None"
            )
        states[objective.name] = state
    return states


def _check_registered(objective) -> None:
    """A saved task names its objectives; loading finds them in the registry, so they must be there."""
    try:
        registered = registry.objective_entry(objective.name).value
    except ZooError:
        registered = None
    if registered is not type(objective):
        raise ConfigError(
            f"objective {objective.name!r} ({type(objective).__qualname__}) is not the registered objective of that "
            "name, so a saved task could not find it again; register it through a plugin (entry point group "
            "'zoo'), or save the weights with save_weights"
        )


def _reject_labels(y):
    if y is not None:
        raise ConfigError("self-supervised objectives make their own labels from raw text; drop `y`")
