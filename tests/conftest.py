"""Fixtures of the test suite (the setup it shares with the doctests is in the root ``conftest.py``)."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf


@pytest.fixture
def bert_inputs():
    """A batch of two padded sequences for a keras-hub ``BertBackbone`` of vocabulary 50 or more."""
    token_ids = np.array([[2, 7, 9, 11, 3, 0], [2, 5, 3, 0, 0, 0]], "int32")
    return {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": (token_ids > 0)}


@pytest.fixture
def bert_twins():
    """``twins(**config)``: a keras-hub ``BertBackbone`` (seed 0) and a second one with its config and weights."""
    def twins(**config):
        keras.utils.set_random_seed(0)
        reference = keras_hub.models.BertBackbone(**config)
        twin = keras_hub.models.BertBackbone.from_config(reference.get_config())
        twin.set_weights(reference.get_weights())
        return reference, twin
    return twins


@pytest.fixture
def assert_function_matches():
    """``check(actual_fn, expected_fn, inputs, tolerance)``: equal values and gradients with respect to every input.

    `expected_fn` computes in float32; `actual_fn` must return the dtype of
    ``inputs[0]``. Gradients are compared relative to the largest expected one.
    """
    def check(actual_fn, expected_fn, inputs: list, tolerance: float):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(inputs)
            expected, actual = expected_fn(*inputs), actual_fn(*inputs)
            weights = tf.random.stateless_normal(expected.shape, seed=[9, 10])
            expected_loss = tf.reduce_sum(expected * weights)
            actual_loss = tf.reduce_sum(tf.cast(actual, "float32") * weights)
        assert actual.dtype == inputs[0].dtype
        np.testing.assert_allclose(tf.cast(actual, "float32"), expected, rtol=tolerance, atol=tolerance)
        for wrt in inputs:
            got, want = tape.gradient(actual_loss, wrt), tape.gradient(expected_loss, wrt)
            assert got.dtype == wrt.dtype
            scale = float(tf.reduce_max(tf.abs(want)))
            np.testing.assert_allclose(tf.cast(got, "float32") / scale, tf.cast(want, "float32") / scale,
                                       atol=tolerance)
    return check


@pytest.fixture
def assert_backbones_train_alike():
    """``check(reference, twin, inputs, power)``: equal training outputs and gradients of ``sum(sequence_output ** power)``."""
    def check(reference, twin, inputs: dict, power: int = 2):
        def loss_and_gradients(model):
            with tf.GradientTape() as tape:
                outputs = model(inputs, training=True)
                loss = tf.reduce_sum(outputs["sequence_output"] ** power)
            return outputs, tape.gradient(loss, model.trainable_variables)

        (expected, expected_gradients), (actual, actual_gradients) = loss_and_gradients(reference), loss_and_gradients(twin)
        np.testing.assert_allclose(actual["sequence_output"], expected["sequence_output"], rtol=1e-5, atol=1e-5)
        for got, want in zip(actual_gradients, expected_gradients):
            if want is None:  # the pooler does not reach the loss
                assert got is None
                continue
            np.testing.assert_allclose(tf.convert_to_tensor(got), tf.convert_to_tensor(want), rtol=1e-4, atol=1e-4)
    return check


@pytest.fixture
def compiled_functions():
    """``compiled(model, inputs, training)``: names of the XLA-compiled functions in the graph of `model` on `inputs`."""
    def compiled(model, inputs: dict, training: bool) -> list:
        specs = {name: tf.TensorSpec(np.shape(value), tf.as_dtype(np.asarray(value).dtype))
                 for name, value in inputs.items()}
        concrete = tf.function(lambda inputs: model(inputs, training=training)).get_concrete_function(specs)
        library = concrete.graph.as_graph_def().library.function
        return [f.signature.name for f in library if "_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b]
    return compiled


#: Files that take minutes, longest first; they run first so that xdist (``--dist loadfile``) does not hand
#: one of them out last, to a worker that would then run alone while the other sits idle.
LONGEST_FILES = ("test_self_training_gain.py", "test_train.py", "test_plugin_distribution.py", "test_export.py",
                 "test_distribute.py")


def pytest_collection_modifyitems(items):
    """Put the items of :data:`LONGEST_FILES` first, in its order, keeping the collection order otherwise."""
    rank = {name: position for position, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FILES)))
