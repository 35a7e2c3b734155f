"""zoo.compiled_optimizer: the optimizer update as one XLA function, with Keras's results."""

import keras
import numpy as np
import tensorflow as tf

import zoo
from zoo.compiled_optimizer import compile_updates
from zoo.distribute import get_strategy


def _adamw():
    schedule = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=20, warmup_target=2e-2, warmup_steps=3)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=0.1, global_clipnorm=0.5)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer


def _train(compiled: bool, steps: int = 8):
    """Weights and optimizer variables of a small model after `steps` steps of one traced training function."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(1)])
    optimizer = _adamw()
    if compiled:
        assert compile_updates(optimizer) and not compile_updates(optimizer)
    x = tf.random.stateless_normal((32, 6), seed=[1, 2])
    y = tf.random.stateless_normal((32, 1), seed=[3, 4])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    losses = [float(step()) for _ in range(steps)]
    return losses, [v.numpy() for v in model.weights], [v.numpy() for v in optimizer.variables]


def test_compiled_updates_equal_keras_updates():
    keras_losses, keras_weights, keras_state = _train(compiled=False)
    losses, weights, state = _train(compiled=True)
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(losses, keras_losses, rtol=1e-5)
    for got, want in zip(weights + state, keras_weights + keras_state):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert int(state[0]) == 8  # the step count advanced once per step


def test_the_update_is_compiled_and_falls_back_under_a_strategy():
    optimizer = keras.optimizers.SGD(learning_rate=0.5)
    compile_updates(optimizer)
    variable = keras.Variable([1.0, 2.0])
    gradient = tf.constant([1.0, 1.0])
    traced = tf.function(lambda: optimizer.apply([gradient], [variable])).get_concrete_function()
    library = traced.graph.as_graph_def().library.function
    assert any("_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b for f in library)

    strategy = get_strategy("mirrored")  # over the two logical CPUs of conftest
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        mirrored = keras.Variable([1.0, 2.0])
        optimizer = keras.optimizers.SGD(learning_rate=0.5)
        compile_updates(optimizer)
        optimizer.build([mirrored])

    @tf.function
    def replicated_step():
        strategy.run(lambda: optimizer.apply([tf.constant([1.0, 1.0])], [mirrored]))

    replicated_step()
    np.testing.assert_allclose(mirrored.numpy(), [0.0, 1.0])  # two replicas' gradients summed, Keras's own update


def test_zoo_tasks_compile_their_updates_unless_the_step_is_compiled():
    model = zoo.build("gpt", objective="clm", num_layers=1, hidden_dim=16, intermediate_dim=32, num_heads=2,
                      sequence_length=16)
    assert getattr(model.optimizer, "_zoo_compiled_updates", False)
    model.compile(jit_compile=True)
    assert not getattr(model.optimizer, "_zoo_compiled_updates", False)
