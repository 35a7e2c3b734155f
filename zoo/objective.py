"""The base class every objective, built-in or third-party, derives from.

An objective has two halves that meet only through key names:

- a data half made of TensorFlow ops, run inside ``tf.data``: optionally a
  structure stage (:meth:`Objective.structure`) that makes examples from
  documents in place of the default packing (NSP pairs segments), then
  :meth:`Objective.prepare` on batches of dense features (``token_ids``,
  ``padding_mask``, ``segment_ids``), which corrupts the inputs and makes
  labels and sample weights, adding any extra model inputs under keys that
  start with its own name (``mlm_positions``);
- a model half that adds a head on the backbone's named outputs and says
  which loss and metrics train it;
- optionally a serving endpoint for :func:`zoo.export`: a method
  ``serve(inputs, context)`` taking a dict of string tensors (by default
  ``{"text": [batch]}``; override with ``serving_signature()``) and a
  :class:`zoo.export.ServingContext`, returning a dict of tensors;
- optionally data in its own format and its own training step, for
  objectives that train on more than raw text (pseudo-labeling, consistency
  training): :meth:`Objective.dataset` turns what ``fit``/``evaluate`` were
  given into batches, :meth:`Objective.train_step` replaces Keras's step, and
  :meth:`Objective.build_state` makes what that step keeps between steps
  (a teacher's moving averages), which checkpoints and saves carry.

The arguments an objective is made with are recorded
(:meth:`Objective.get_config`), so a task saved in Keras's format
(``model.save("task.keras")``) makes its objectives again on loading.

Objectives see the :class:`zoo.spec.ModelSpec` of the backbone, never the
model family's code.
"""

from __future__ import annotations

import abc
import functools
import inspect
import json
from typing import ClassVar

import keras
import tensorflow as tf

from zoo.errors import ConfigError
from zoo.fused_cross_entropy import SparseCrossEntropy
from zoo.sparse_accuracy import SparseAccuracy


def _recording_arguments(init):
    """`init`, recording the keyword arguments of the outermost call as ``_arguments`` (for ``get_config``).

    As Keras does for layers, so that no objective needs code of its own to be
    saved; ``functools.wraps`` keeps ``inspect.signature`` of the class true.
    """
    @functools.wraps(init)
    def recording_init(self, *args, **kwargs):
        if "_arguments" not in self.__dict__:
            self._arguments = _keyword_arguments(init, self, args, kwargs)
        init(self, *args, **kwargs)

    return recording_init


def _keyword_arguments(init, instance, args, kwargs) -> dict:
    try:
        bound = inspect.signature(init).bind(instance, *args, **kwargs)
    except TypeError:  # init reports wrong arguments itself
        return {}
    arguments = {}
    for name, value in list(bound.arguments.items())[1:]:
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            arguments[f"*{name}"] = value
        else:
            arguments[name] = value
    return arguments


class Objective(abc.ABC):
    """A self-supervised objective.

    Subclasses set ``name`` and ``requires`` and implement :meth:`prepare`,
    :meth:`build_head`, :meth:`loss`; the rest have working defaults.

    Args:
        loss_weight: weight of this objective's loss in the total loss.

    Example:
        >>> import zoo
        >>> class Copy(zoo.Objective):
        ...     name = "copy"
        ...     requires = frozenset({"bidirectional"})
        ...     def prepare(self, features, spec, seed):
        ...         return features, features["token_ids"], tf.cast(features["padding_mask"], "float32")
        ...     def build_head(self, outputs, inputs, spec):
        ...         return spec.token_embedding(outputs["sequence_output"], reverse=True)
        >>> Copy(loss_weight=0.5).loss_weight
        0.5
    """

    #: Registry name; also the key of this objective's outputs, labels and losses.
    name: ClassVar[str] = ""
    #: Capabilities (see :data:`zoo.spec.CAPABILITIES`) the backbone must have.
    requires: ClassVar[frozenset] = frozenset()
    #: One line for ``zoo list``.
    description: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_arguments(cls.__dict__["__init__"])

    @_recording_arguments
    def __init__(self, *, loss_weight: float = 1.0):
        if not loss_weight >= 0:
            raise ConfigError(f"{self.name}: loss_weight must be >= 0, got {loss_weight!r}")
        self.loss_weight = float(loss_weight)

    def get_config(self) -> dict:
        """The keyword arguments this objective was constructed with, as JSON values.

        zoo records them when the objective is made, so no subclass needs
        code for it; a task saved with ``model.save("task.keras")`` rebuilds
        its objectives from them. Override it for an objective whose
        arguments are not JSON values (numbers, strings, booleans, ``None``,
        lists and dicts of them).

        Example:
            >>> from zoo.objectives.mlm import MaskedLM
            >>> MaskedLM(mask_rate=0.2, loss_weight=0.5).get_config()
            {'mask_rate': 0.2, 'loss_weight': 0.5}
        """
        for name, value in self._arguments.items():
            if name.startswith("*"):
                raise ConfigError(
                    f"{self.name}: positional arguments ({name}) cannot be saved; "
                    f"take keyword arguments or override {type(self).__name__}.get_config"
                )
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{self.name}: argument {name}={value!r} is not a JSON value, so a saved task cannot "
                    f"rebuild this objective; pass numbers, strings, lists or dicts, "
                    f"or override {type(self).__name__}.get_config"
                ) from None
        return dict(self._arguments)

    # -- data half: TensorFlow ops on a batch, usable in Dataset.map ---------

    def structure(self, documents: tf.data.Dataset, tokenize, spec, sequence_length: int, seed: int):
        """The structure stage: examples from documents, or ``None`` to pack documents (the default).

        At most one objective of a task may return a dataset here; every
        objective's :meth:`prepare` then runs on batches of its examples
        (NSP forms sentence pairs, MLM masks tokens inside them).

        Args:
            documents: dataset of scalar ``tf.string`` documents (non-empty,
                already shuffled when training).
            tokenize: ``tokenize(strings) -> tf.RaggedTensor`` of int32 token
                ids for a 1-D batch of strings (no start, end or padding).
            spec: the backbone's :class:`~zoo.spec.ModelSpec`.
            sequence_length: length of every example.
            seed: Python int seed; the same seed gives the same examples.

        Returns:
            ``None``, or a dataset of unbatched examples: int32
            ``token_ids`` and ``padding_mask`` (and ``segment_ids`` where the
            objective makes them) of shape ``[sequence_length]``, plus any
            tensors for this objective's :meth:`prepare` under keys that
            start with its name (``nsp_label``).
        """
        return None

    @abc.abstractmethod
    def prepare(self, features: dict, spec, seed: tf.Tensor) -> tuple:
        """Corrupt a batch and make its labels.

        Args:
            features: dict of dense int32 tensors ``[batch, sequence_length]``
                (``token_ids``, ``padding_mask``, ``segment_ids``, and what
                objectives before this one added).
            spec: the backbone's :class:`~zoo.spec.ModelSpec`.
            seed: int ``[2]`` seed for stateless random ops; the same seed
                gives the same output.

        Returns:
            ``(features, labels, sample_weight)``: the features with this
            objective's changes, and this objective's labels and float32
            weights (0 where nothing is to be learned).
        """

    def prepare_inference(self, features: dict, spec) -> dict:
        """Add the inputs this objective's head needs at prediction time (no corruption)."""
        return features

    # -- model half ------------------------------------------------------------

    def head_inputs(self, spec, sequence_length: int) -> dict:
        """Extra ``keras.Input`` tensors the head needs, keyed by feature name."""
        return {}

    @abc.abstractmethod
    def build_head(self, outputs: dict, inputs: dict, spec):
        """Return the head's output tensor, built on the backbone's named `outputs`."""

    def loss(self) -> keras.losses.Loss:
        """The loss of this objective, averaged over weighted positions: softmax cross-entropy from logits."""
        return SparseCrossEntropy(reduction="mean_with_sample_weight", name=f"{self.name}_loss")

    def metrics(self) -> list:
        """Weighted metrics reported for this objective: top-1 ``accuracy`` of the logits."""
        return [SparseAccuracy(name="accuracy")]

    # -- optional: own data format and training step -----------------------------

    def dataset(self, task, x, y, *, batch_size: int, training: bool):
        """Batches for ``fit`` (``training=True``) or ``evaluate`` from `x` and `y`, or ``None``.

        ``None`` (the default) leaves the data to the task: raw text is
        packed and every objective's :meth:`prepare` makes the labels. An
        objective that trains on its own format (labeled and unlabeled
        texts) returns a ``tf.data.Dataset`` of ``(inputs, labels,
        sample_weights)``, the last two dicts keyed by objective name; the
        first objective of the task that returns one wins.
        """
        return None

    def build_state(self, task):
        """Training state this objective keeps besides the task's weights, or ``None`` (the default).

        Called once, when `task` is made. An objective whose training step
        keeps state of its own (``pseudo_label``'s moving-average teacher)
        returns it here as a built ``keras.layers.Layer``; the task then
        carries it in ``zoo train``'s checkpoints and in Keras-format saves,
        so a resumed or reloaded task continues with it. It is not among
        ``task.weights``, and exports leave it out.
        """
        return None

    def train_step(self, task, data) -> dict:
        """One training step of `task` on a batch `data`; by default Keras's own.

        Override it to change what a step optimizes (pseudo-labels from a
        teacher, consistency between two views). At most one objective of a
        task may override it. An override computes the loss under a
        ``tf.GradientTape`` (``task(x, training=True)``, ``task.compute_loss``
        for the compiled losses), then calls ``task.minimize(tape, loss,
        batch_size)`` and returns ``task.compute_metrics(x, y, y_pred,
        sample_weight)``, as ``keras.Model.train_step`` does.
        """
        return keras.Model.train_step(task, data)
