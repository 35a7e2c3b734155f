"""Self-training for text classification (``pseudo_label``), online and offline.

A classifier head (dropout → dense, one logit per class) on one vector per
text, chosen by ``pooling``: ``pooled`` (the default) takes ``pooled_output``
where the backbone has the ``pooled`` capability (bert, lstm_lm,
autoencoder in token mode), else ``sequence_output`` at the last real
position for ``causal`` backbones (gpt); ``last`` always takes that last real
position; ``mean`` averages the sequence output over the real tokens (as in
Sentence-BERT; close to a bag of words after a shallow encoder, the better
bias when labels are few; bert's own pooling layer then stays unused, and
Keras warns that it gets no gradients). Backbones with none of these, or taking feature
vectors rather than text, are refused at build time. The autoencoder's
decoder is fed a single start token (its output is unused).

Data (``fit`` and ``evaluate`` of the task)::

    model = zoo.build("bert", objective={"pseudo_label": {"classes": ["neg", "pos"], "threshold": 0.9}})
    model.fit({"labeled": (texts, labels), "unlabeled": more_texts}, batch_size=16, epochs=3)
    model.fit(texts, labels)                  # supervised only, the same head and loss
    model.evaluate(held_out_texts, held_out_labels)   # loss and pseudo_label_accuracy
    model.predict(texts)["pseudo_label"]      # logits [n, len(classes)]

- ``texts`` and ``unlabeled`` are lists (or arrays) of strings, one example
  per string, cut to ``sequence_length`` tokens; ``labels`` are class names
  from ``classes`` or ints in ``[0, len(classes))``, one per text. ``(texts,
  labels)`` may also be given as ``x`` without ``y``. Mismatched lengths,
  unknown class names and out-of-range ints raise :class:`zoo.ZooError`.
- ``batch_size`` counts labeled texts per step; each step also takes
  ``unlabeled_ratio * batch_size`` unlabeled texts, concatenated into the same
  batch with sample weight 0 (so Keras's own step would train on the labeled
  rows only). An epoch is one pass over the unlabeled texts; the labeled set
  is reshuffled and repeated as needed. Without unlabeled texts an epoch is
  one pass over the labeled ones.
- :func:`zoo.text.labeled.default_labeled_corpus` is a ready task (stdlib
  docstrings labeled by package) and :func:`zoo.text.labeled.scarce_labels`
  splits off the labeled few.

Each training step (:meth:`PseudoLabel.train_step`, the task's step hook):
the teacher labels every unlabeled row with its arg-max class, under
``stop_gradient``; the rows whose teacher confidence (largest probability)
is ``>= threshold`` count. The teacher is the model itself in inference mode
(``training=False``: no dropout) or, with ``teacher="ema"``, an exponential
moving average of the model's weights (decay ``ema_decay``; see
:mod:`zoo.objectives.ema_teacher`): it starts from the weights of the first
training step (a pretrained run's under ``init_from``), moves toward the
model's at the start of every step, and is saved with the task (``zoo
train``'s checkpoints, ``model.save``), so a resumed run continues the same
average. The student sees the unlabeled texts with
``noise_rate`` of their tokens hidden (as in noisy-student training and
FixMatch's weak/strong views: the teacher labels the whole text, the student
must find the class from part of it); labeled rows are left whole. Strong
noise is what carries knowledge beyond the teacher's: on the docstring task
(see the README), hiding 20% of the tokens made self-training worse than
supervised-only, hiding 50% made it better on most seeds, so 0.5 is the default.
Many unlabeled texts per labeled one matter as much: FixMatch's ``μ = 7``
(the default ``unlabeled_ratio``) gave a gain on every seed and vocabulary
tried there, ``3`` fell below supervised-only on some.
The loss is::

    supervised_loss + unlabeled_weight * ramp(step) * sum(confident * CE(student, pseudo)) / n_unlabeled

with ``ramp`` rising from 0 to 1 over ``ramp_up_steps`` optimizer steps
(``linear``, or ``sigmoid``: ``exp(-5 (1 - t)^2)`` as in Laine & Aila, 2017),
counted by the optimizer's ``iterations`` variable, so a resumed run keeps
its place. Logged: ``pseudo_label_confident`` (share of unlabeled rows past
the threshold) and ``pseudo_label_unlabeled_loss``.

Offline (:func:`self_train`): train a teacher on the labeled texts, label the
unlabeled ones, keep the confident ones, train a fresh student on both,
make it the teacher, repeat for ``rounds``.

Export: ``serve`` returns the predicted class name, and every class name
and probability (sorted, and in class order).
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from zoo.errors import ConfigError, IncompatibleError, unknown_name
from zoo.hookspecs import hookimpl
from zoo.objective import Objective
from zoo.objectives.ema_teacher import EmaTeacher
from zoo.sparse_accuracy import SparseAccuracy
from zoo.text.labeled import DEFAULT_PACKAGES
from zoo.text.pipeline import as_string_dataset

RAMPS = ("linear", "sigmoid")
TEACHERS = ("model", "ema")
POOLINGS = ("pooled", "mean", "last")
SHUFFLE_BUFFER_SIZE = 10_000


@keras.saving.register_keras_serializable(package="zoo")
class ClassifierHead(keras.layers.Layer):
    """Dropout then a dense layer to one logit per class; owns the self-training metrics.

    Args:
        num_classes: number of logits.
        dropout: rate before the dense layer.

    Example:
        >>> head = ClassifierHead(num_classes=3)
        >>> tuple(head(np.zeros((2, 8), "float32")).shape)
        (2, 3)
    """

    def __init__(self, num_classes, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.rate = float(dropout)
        self.dropout = keras.layers.Dropout(self.rate, dtype=self.dtype_policy, name="dropout")
        self.dense = keras.layers.Dense(
            self.num_classes, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype=self.dtype_policy, name="logits",
        )
        self.confident = keras.metrics.Mean(name="pseudo_label_confident")
        self.unlabeled_loss = keras.metrics.Mean(name="pseudo_label_unlabeled_loss")

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, pooled, training=None):
        return self.dense(self.dropout(pooled, training=training))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "dropout": self.rate}


class PseudoLabel(Objective):
    """Text classification trained on labeled texts plus the teacher's confident labels of unlabeled ones.

    Args:
        classes: class names (at least two, distinct), or their number
            (names ``"0"``, ``"1"``, ...); default, the classes of
            :func:`zoo.text.labeled.default_labeled_corpus`.
        threshold: teacher confidence an unlabeled text needs to count.
        unlabeled_weight: weight of the unlabeled loss once ramped up.
        ramp_up_steps: optimizer steps over which that weight rises from 0.
        ramp: ``linear`` or ``sigmoid``.
        teacher: ``model`` (the model in inference mode) or ``ema`` (a
            moving average of its weights).
        ema_decay: decay of the EMA teacher.
        unlabeled_ratio: unlabeled texts per labeled text in a step (7, FixMatch's μ).
        noise_rate: share of the tokens of unlabeled texts hidden from the
            student (replaced by the mask token, else the unknown or padding
            token); the teacher sees them whole.
        balance: weigh each class's pseudo-labels by its share of the
            labeled rows over its share of the confident pseudo-labels.
        dropout: dropout rate of the head.
        pooling: the vector the head reads: ``pooled``, ``mean`` or ``last``
            (see the module docstring).
        loss_weight: weight of the supervised loss.

    Example:
        >>> objective = PseudoLabel(classes=["neg", "pos"], ramp_up_steps=10)
        >>> [float(objective.ramp_weight(step)) for step in (0, 5, 10, 20)]
        [0.0, 0.5, 1.0, 1.0]
        >>> objective.label_ids(["pos", 0, "neg"]).tolist()
        [1, 0, 0]
    """

    name = "pseudo_label"
    #: bert, lstm_lm and autoencoder have ``pooled``, gpt is ``causal``: either is enough,
    #: so nothing is required up front and :meth:`build_head` checks for one of them.
    requires = frozenset()
    description = "self-training classifier: labeled texts + teacher's confident labels of unlabeled texts"

    def __init__(
        self,
        *,
        classes=DEFAULT_PACKAGES,
        threshold: float = 0.9,
        unlabeled_weight: float = 1.0,
        ramp_up_steps: int = 1000,
        ramp: str = "linear",
        teacher: str = "model",
        ema_decay: float = 0.99,
        unlabeled_ratio: int = 7,
        noise_rate: float = 0.5,
        balance: bool = True,
        dropout: float = 0.1,
        pooling: str = "pooled",
        loss_weight: float = 1.0,
    ):
        super().__init__(loss_weight=loss_weight)
        if isinstance(classes, int) and not isinstance(classes, bool):
            classes = [str(i) for i in range(classes)]
        if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
            raise ConfigError(f"pseudo_label: classes must be a list of class names or their number, got {classes!r}")
        classes = list(classes)
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ConfigError(f"pseudo_label: classes must be at least two distinct names, got {classes!r}")
        if not 0 <= threshold <= 1:
            raise ConfigError(f"pseudo_label: threshold must be in [0, 1], got {threshold!r}")
        if not unlabeled_weight >= 0:
            raise ConfigError(f"pseudo_label: unlabeled_weight must be >= 0, got {unlabeled_weight!r}")
        if isinstance(ramp_up_steps, bool) or not isinstance(ramp_up_steps, int) or ramp_up_steps < 0:
            raise ConfigError(f"pseudo_label: ramp_up_steps must be an integer >= 0, got {ramp_up_steps!r}")
        if ramp not in RAMPS:
            raise unknown_name("pseudo_label ramp", ramp, RAMPS)
        if teacher not in TEACHERS:
            raise unknown_name("pseudo_label teacher", teacher, TEACHERS)
        if not 0 <= ema_decay < 1:
            raise ConfigError(f"pseudo_label: ema_decay must be in [0, 1), got {ema_decay!r}")
        if isinstance(unlabeled_ratio, bool) or not isinstance(unlabeled_ratio, int) or unlabeled_ratio < 1:
            raise ConfigError(f"pseudo_label: unlabeled_ratio must be an integer >= 1, got {unlabeled_ratio!r}")
        if not 0 <= noise_rate < 1:
            raise ConfigError(f"pseudo_label: noise_rate must be in [0, 1), got {noise_rate!r}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"pseudo_label: dropout must be in [0, 1), got {dropout!r}")
        if pooling not in POOLINGS:
            raise unknown_name("pseudo_label pooling", pooling, POOLINGS)
        self.classes = classes
        self.threshold = float(threshold)
        self.unlabeled_weight = float(unlabeled_weight)
        self.ramp_up_steps = ramp_up_steps
        self.ramp = ramp
        self.teacher = teacher
        self.ema_decay = float(ema_decay)
        self.unlabeled_ratio = unlabeled_ratio
        self.noise_rate = float(noise_rate)
        self.balance = bool(balance)
        self.dropout = float(dropout)
        self.pooling = pooling
        self._head = None
        self._ema_teacher = None
        self._model_weights = []

    # -- labels and data -------------------------------------------------------

    def label_ids(self, labels) -> np.ndarray:
        """Class indices of `labels` (class names or ints), int32; bad ones raise :class:`zoo.ZooError`."""
        index = {name: i for i, name in enumerate(self.classes)}
        ids = []
        for label in np.asarray(labels, dtype=object).reshape(-1).tolist():
            if isinstance(label, bytes):
                label = label.decode("utf-8")
            if isinstance(label, str):
                if label not in index:
                    raise unknown_name("pseudo_label class", label, self.classes)
                ids.append(index[label])
            elif isinstance(label, (int, np.integer)) and not isinstance(label, bool):
                if not 0 <= label < len(self.classes):
                    raise ConfigError(
                        f"pseudo_label: label {label} is out of range for {len(self.classes)} classes; "
                        f"use 0..{len(self.classes) - 1} or class names {self.classes}"
                    )
                ids.append(int(label))
            else:
                raise ConfigError(
                    f"pseudo_label: labels are class names or ints, got {type(label).__name__} {label!r}"
                )
        return np.asarray(ids, np.int32)

    def dataset(self, task, x, y, *, batch_size, training):
        """Batches of ``(inputs, labels, sample_weights)`` from the formats in the module docstring.

        A ``tf.data.Dataset`` passes through as it is (already such batches).
        """
        if isinstance(x, tf.data.Dataset):
            return None
        others = [o.name for o in task.objectives if o is not self]
        if others:
            raise ConfigError(
                f"pseudo_label trains alone; build it without {', '.join(others)} (pretrain in another task)"
            )
        if isinstance(x, Mapping):
            unknown = set(x) - {"labeled", "unlabeled"}
            if unknown or "labeled" not in x or y is not None:
                raise ConfigError(
                    "pseudo_label: pass fit({'labeled': (texts, labels), 'unlabeled': texts}); "
                    f"got keys {sorted(x)}{' and a y' if y is not None else ''}"
                )
            (texts, labels), unlabeled = self._pair(x["labeled"]), x.get("unlabeled")
        else:
            texts, labels = self._pair((x, y) if y is not None else x)
            unlabeled = None
        labeled = tf.data.Dataset.zip(as_string_dataset(texts), tf.data.Dataset.from_tensor_slices(labels))
        seed = task.preprocessor.seed
        if not training:
            batches = labeled.batch(batch_size).map(lambda t, l: (t, l, tf.ones_like(l, tf.float32)))
        elif unlabeled is None:
            batches = labeled.shuffle(SHUFFLE_BUFFER_SIZE, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
            batches = batches.map(lambda t, l: (t, l, tf.ones_like(l, tf.float32)))
        else:
            labeled = labeled.shuffle(SHUFFLE_BUFFER_SIZE, seed=seed, reshuffle_each_iteration=True).repeat()
            unlabeled = as_string_dataset(unlabeled).shuffle(
                SHUFFLE_BUFFER_SIZE, seed=seed + 1, reshuffle_each_iteration=True
            )
            batches = tf.data.Dataset.zip(
                labeled.batch(batch_size, drop_remainder=True), unlabeled.batch(batch_size * self.unlabeled_ratio)
            ).map(_concatenate_unlabeled)
        return batches.map(
            lambda texts, labels, weights: (
                task.preprocessor.inference_features(texts), {self.name: labels}, {self.name: weights}
            ),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        ).prefetch(tf.data.AUTOTUNE)

    def _pair(self, labeled):
        if not (isinstance(labeled, (tuple, list)) and len(labeled) == 2) or isinstance(labeled[0], (str, bytes)):
            raise ConfigError(
                "pseudo_label needs labeled texts: fit(texts, labels), fit((texts, labels)) or "
                "fit({'labeled': (texts, labels), 'unlabeled': texts})"
            )
        texts, labels = labeled
        if isinstance(texts, tf.data.Dataset) or isinstance(labels, tf.data.Dataset):
            raise ConfigError("pseudo_label: give texts and labels as lists or arrays, not datasets")
        texts = np.asarray(texts, dtype=object).reshape(-1)
        labels = self.label_ids(labels)
        if len(texts) != len(labels) or not len(texts):
            raise ConfigError(
                f"pseudo_label: {len(texts)} texts but {len(labels)} labels; give one label per text (and some texts)"
            )
        return texts, labels

    def prepare(self, features, spec, seed):
        raise ConfigError(self._needs_labels())

    @staticmethod
    def _needs_labels():
        return ("pseudo_label classifies labeled texts, it does not pack raw text: "
                "fit({'labeled': (texts, labels), 'unlabeled': texts}) in a task without other objectives")

    def prepare_inference(self, features, spec):
        if "decoder_token_ids" in spec.input_names and "decoder_token_ids" not in features:
            rows = tf.shape(features["token_ids"])[0]
            start = tf.fill([rows, 1], tf.constant(spec.special_token_ids["start"], features["token_ids"].dtype))
            features = {**features, "decoder_token_ids": start, "decoder_padding_mask": tf.ones_like(start)}
        return features

    # -- model half ------------------------------------------------------------

    def build_head(self, outputs, inputs, spec):
        if "token_ids" not in spec.input_names:
            raise IncompatibleError(
                f"{spec.family} built here takes {', '.join(spec.input_names)}, not text; pseudo_label classifies "
                "text (for autoencoder, leave input_dim at 0)"
            )
        pooled = self._pool(outputs, inputs, spec)
        if pooled is None:
            raise IncompatibleError(
                f"{spec.family} has no {self._pooling_needs()} to classify from; pseudo_label needs one "
                "(bert, gpt, lstm_lm and autoencoder have pooled_output or a sequence output)"
            )
        self._head = ClassifierHead(len(self.classes), dropout=self.dropout, name="pseudo_label_head")
        return self._head(pooled)

    def _pool(self, outputs, inputs, spec):
        """One vector per text as ``pooling`` says, or None where the backbone has no such output."""
        sequence = outputs.get("sequence_output", outputs.get("encoder_sequence_output"))
        if self.pooling == "pooled" and "pooled" in spec.capabilities and "pooled_output" in outputs:
            return outputs["pooled_output"]
        if self.pooling == "mean" and sequence is not None:
            mask = ops.cast(inputs["padding_mask"], sequence.dtype)[:, :, None]
            return ops.sum(sequence * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1)
        if sequence is not None and (self.pooling == "last" or "causal" in spec.capabilities):
            last = ops.maximum(ops.sum(ops.cast(inputs["padding_mask"], "int32"), axis=1) - 1, 0)
            return ops.take_along_axis(sequence, ops.reshape(last, (-1, 1, 1)), axis=1)[:, 0, :]
        return None

    def _pooling_needs(self):
        return {"pooled": "pooled_output or causal sequence_output", "mean": "sequence output",
                "last": "sequence output"}[self.pooling]

    def metrics(self) -> list:
        return [SparseAccuracy(name="accuracy")]

    # -- training step -----------------------------------------------------------

    def ramp_weight(self, step):
        """The unlabeled loss's share of ``unlabeled_weight`` after `step` optimizer steps, in [0, 1]."""
        if self.ramp_up_steps == 0:
            return tf.constant(1.0)
        progress = tf.clip_by_value(tf.cast(step, tf.float32) / self.ramp_up_steps, 0.0, 1.0)
        if self.ramp == "linear":
            return progress
        return tf.exp(-5.0 * tf.square(1.0 - progress))

    def train_step(self, task, data):
        """Supervised loss on the labeled rows plus the ramped loss on confident pseudo-labels of the others.

        Rows with sample weight 0 are the unlabeled ones (see :meth:`dataset`).
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        unlabeled = tf.cast(sample_weight[self.name] <= 0, tf.float32)
        if self._ema_teacher is not None:
            self._ema_teacher.update(self._model_weights)  # toward the weights of the step before
            teacher_logits = self._ema_teacher(x)[self.name]
        else:
            teacher_logits = task(x, training=False)[self.name]
        probabilities = tf.stop_gradient(tf.nn.softmax(tf.cast(teacher_logits, tf.float32)))
        pseudo_labels = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        confident = tf.cast(tf.reduce_max(probabilities, axis=-1) >= self.threshold, tf.float32) * unlabeled
        weight = confident * self._class_weights(y[self.name], 1.0 - unlabeled, pseudo_labels, confident)
        # "sum_over_batch_size" divides by all rows; this makes it a mean over the unlabeled ones.
        rows = tf.cast(tf.shape(unlabeled)[0], tf.float32)
        weight = weight * rows / tf.maximum(tf.reduce_sum(unlabeled), 1.0)
        unlabeled_loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        scale = self.unlabeled_weight * self.ramp_weight(task.optimizer.iterations)
        student_x = self._noised(task, x, unlabeled) if self.noise_rate else x
        with tf.GradientTape() as tape:
            y_pred = task(student_x, training=True)
            supervised = task.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            unlabeled_loss = unlabeled_loss_fn(pseudo_labels, tf.cast(y_pred[self.name], tf.float32), weight)
            loss = supervised + scale * unlabeled_loss
        task.minimize(tape, loss, batch_size=tf.shape(unlabeled)[0])
        self._head.confident.update_state(confident, sample_weight=unlabeled)
        self._head.unlabeled_loss.update_state(
            unlabeled_loss * tf.distribute.get_strategy().num_replicas_in_sync
        )
        return task.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _class_weights(self, labels, labeled, pseudo_labels, confident):
        """Per confident row, its pseudo-class's labeled share (add-one smoothed) over its pseudo-label share.

        A teacher leaning to one class then cannot snowball into labeling
        everything with it (class-balanced self-training, Zou et al., 2018).
        """
        if not self.balance:
            return tf.ones_like(confident)
        classes = len(self.classes)
        labeled_counts = tf.math.unsorted_segment_sum(labeled, tf.cast(labels, tf.int32), classes)
        prior = (labeled_counts + 1.0) / (tf.reduce_sum(labeled) + classes)
        share = tf.math.unsorted_segment_sum(confident, pseudo_labels, classes) / tf.maximum(
            tf.reduce_sum(confident), 1.0
        )
        return tf.gather(tf.math.divide_no_nan(prior, share), pseudo_labels)

    def _noised(self, task, x, unlabeled):
        """`x` with ``noise_rate`` of the non-special tokens of unlabeled rows replaced, seeded by the step."""
        spec, token_ids = task.spec, x["token_ids"]
        ids = spec.special_token_ids
        hidden = tf.constant(ids.get("mask", ids.get("unk", ids["pad"])), token_ids.dtype)
        special = tf.reduce_any(token_ids[..., None] == tf.constant(spec.all_special_ids, token_ids.dtype), axis=-1)
        candidate = (x["padding_mask"] > 0) & ~special & (unlabeled[:, None] > 0)
        seed = tf.stack([tf.constant(task.preprocessor.seed, tf.int64), tf.cast(task.optimizer.iterations, tf.int64)])
        drop = tf.random.stateless_uniform(tf.shape(token_ids), seed=seed) < self.noise_rate
        return {**x, "token_ids": tf.where(candidate & drop, hidden, token_ids)}

    def build_state(self, task):
        """With ``teacher="ema"``, the moving-average teacher (an :class:`EmaTeacher`); else ``None``."""
        if self.teacher != "ema":
            return None
        model = keras.Model(task.input, task.output)
        self._ema_teacher = EmaTeacher(model, decay=self.ema_decay, name=f"{self.name}_ema_teacher")
        self._model_weights = list(model.weights)
        return self._ema_teacher

    # -- export ------------------------------------------------------------------

    def serve(self, inputs, context):
        """Classify each text: ``label`` (string ``[batch]``), ``classes`` and ``scores`` (``[batch, classes]``,
        most probable first) and ``probabilities`` (float32 ``[batch, classes]`` in class order)."""
        logits = context.outputs(context.features(inputs["text"]))[self.name]
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))
        scores, order = tf.math.top_k(probabilities, k=len(self.classes))
        names = tf.gather(tf.constant(self.classes), order)
        return {"label": names[:, 0], "classes": names, "scores": scores, "probabilities": probabilities}


def _concatenate_unlabeled(labeled, unlabeled_texts):
    texts, labels = labeled
    rows = tf.shape(unlabeled_texts)[0]
    return (
        tf.concat([texts, unlabeled_texts], axis=0),
        tf.concat([labels, tf.zeros([rows], labels.dtype)], axis=0),
        tf.concat([tf.ones_like(labels, tf.float32), tf.zeros([rows], tf.float32)], axis=0),
    )


def self_train(build, labeled, unlabeled, *, rounds: int = 2, threshold: float = 0.9, batch_size: int = 16,
               **fit_kwargs) -> tuple:
    """Offline self-training: teacher on `labeled` → confident labels of `unlabeled` → fresh student → repeat.

    Args:
        build: ``build() -> Task`` with a ``pseudo_label`` objective; called
            once per model, so each student starts fresh.
        labeled: ``(texts, labels)``.
        unlabeled: texts.
        rounds: students trained after the first teacher.
        threshold: confidence a pseudo-label needs to be kept.
        batch_size: passed to ``fit``.
        **fit_kwargs: passed to every ``fit`` (``epochs``, ``verbose``, ...).

    Returns:
        ``(model, confident_shares)``: the last student, and per round the
        share of unlabeled texts whose label was kept.

    Example:
        >>> import zoo
        >>> model, shares = self_train(  # doctest: +SKIP
        ...     lambda: zoo.build("bert", objective={"pseudo_label": {"classes": ["a", "b"]}}, num_layers=1),
        ...     (["good", "bad"], ["a", "b"]), ["fine", "awful"], rounds=1, epochs=2, verbose=0)
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"self_train: rounds must be an integer >= 1, got {rounds!r}")
    texts, labels = labeled
    unlabeled = list(unlabeled)
    model = build()
    objective = next((o for o in model.objectives if isinstance(o, PseudoLabel)), None)
    if objective is None:
        raise ConfigError("self_train: build() must return a model with the pseudo_label objective")
    labels = objective.label_ids(labels)
    model.fit(texts, labels, batch_size=batch_size, **fit_kwargs)
    shares = []
    for _ in range(rounds):
        logits = model.predict(unlabeled, batch_size=max(batch_size, 64), verbose=0)[objective.name]
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32)).numpy()
        keep = probabilities.max(axis=-1) >= threshold
        shares.append(float(keep.mean()))
        student_texts = list(texts) + [text for text, kept in zip(unlabeled, keep) if kept]
        student_labels = np.concatenate([labels, probabilities.argmax(axis=-1)[keep].astype(np.int32)])
        model = build()
        model.fit(student_texts, student_labels, batch_size=batch_size, **fit_kwargs)
    return model, shares


@hookimpl
def zoo_register_objectives(register):
    register(PseudoLabel)

