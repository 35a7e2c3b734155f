"""A teacher whose weights are an exponential moving average of a model's (mean teacher).

:class:`EmaTeacher` is a Keras layer holding a copy of the model and a
``started`` flag. :meth:`EmaTeacher.update`, called at the start of every
training step before the teacher runs, copies the model's weights on the
first call and moves the averages toward them on every later one, so the
teacher starts from whatever weights training starts from (a pretrained
run's, loaded after the task was built). Being a layer, it is saved by
``tf.train.Checkpoint`` and by Keras-format saves, flag included, so a
resumed run continues the same averages.

The update runs in cross-replica context (``merge_call``), once per
variable on every device, as optimizers update their own variables.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from zoo.errors import ConfigError


class EmaTeacher(keras.layers.Layer):
    """A frozen copy of `model` whose weights follow a moving average of `model`'s.

    Args:
        model: a built functional model; the copy is made with
            ``keras.models.clone_model``, so it must give the same weights in
            the same order.
        decay: weight of the old average in each update, in ``[0, 1)``.

    Example:
        >>> import numpy as np
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
        >>> teacher = EmaTeacher(model, decay=0.5)
        >>> model.set_weights([np.full((2, 1), 2.0)])
        >>> teacher.update(model.weights)  # the first update copies
        >>> model.set_weights([np.full((2, 1), 4.0)])
        >>> teacher.update(model.weights)
        >>> teacher.model.get_weights()[0].ravel().tolist()
        [3.0, 3.0]
    """

    def __init__(self, model, *, decay: float, **kwargs):
        super().__init__(**kwargs)
        self.decay = float(decay)
        self.model = keras.models.clone_model(model)
        self.model.trainable = False
        mismatched = [(mine.path, theirs.path) for mine, theirs in zip(self.model.weights, model.weights)
                      if mine.shape != theirs.shape]
        if len(self.model.weights) != len(model.weights) or mismatched:
            raise ConfigError(
                f"the copy of {model.name} has other weights than it ({len(self.model.weights)} vs "
                f"{len(model.weights)}; first difference {mismatched[:1]}), so it cannot be a moving-average "
                "teacher; make its layers' get_config give back the same layer, or use teacher='model'"
            )
        self.started = self.add_weight(shape=(), initializer="zeros", trainable=False, name="started")
        self.built = True

    def update(self, weights) -> None:
        """Move the averages toward `weights` (the model's, in ``model.weights`` order); the first call copies."""

        def update_averages(strategy):
            decay = tf.where(self.started.value > 0, self.decay, 0.0)
            for average, weight in zip(self.model.weights, weights):
                strategy.extended.update(average.value, _blend, args=(weight.value, decay), group=False)
            strategy.extended.update(self.started.value, lambda flag: flag.assign(1.0), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(update_averages, tf.distribute.get_strategy())

    def call(self, inputs):
        return self.model(inputs, training=False)


def _blend(average, weight, decay):
    return average.assign(decay * average + (1.0 - decay) * tf.cast(weight, average.dtype))
