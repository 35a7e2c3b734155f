"""zoo.testing catches the mistakes it is there to catch, and serves several string inputs."""

import pathlib
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import testing
from zoo.text.corpus import default_corpus


class TokenCopy(zoo.Objective):
    """Predict each token from itself: a correct, minimal objective to break in the tests."""

    name = "token_copy"
    requires = frozenset({"bidirectional"})

    def prepare(self, features, spec, seed):
        return features, features["token_ids"], tf.cast(features["padding_mask"], tf.float32)

    def build_head(self, outputs, inputs, spec):
        return spec.token_embedding(outputs["sequence_output"], reverse=True)


class Unseeded(TokenCopy):
    name = "unseeded"

    def prepare(self, features, spec, seed):
        noise = tf.random.uniform(tf.shape(features["token_ids"]), maxval=2, dtype=tf.int32)
        return {**features, "token_ids": features["token_ids"] * noise}, features["token_ids"], tf.cast(
            features["padding_mask"], tf.float32)


class WeighsPadding(TokenCopy):
    name = "weighs_padding"

    def prepare(self, features, spec, seed):
        return features, features["token_ids"], tf.ones(tf.shape(features["token_ids"]), tf.float32)


class StrayKey(TokenCopy):
    name = "stray_key"

    def prepare(self, features, spec, seed):
        features, labels, weights = super().prepare(features, spec, seed)
        return {**features, "positions": features["token_ids"]}, labels, weights


class Frozen(TokenCopy):
    """A head that cannot learn: its loss never falls."""

    name = "frozen"

    def build_head(self, outputs, inputs, spec):
        logits = keras.ops.stop_gradient(spec.token_embedding(outputs["sequence_output"], reverse=True))
        return logits + 0.0 * keras.layers.Dense(1, name="frozen_zero")(outputs["sequence_output"])


class Pair(TokenCopy):
    """Serves a signature of two string inputs."""

    name = "pair"

    def serving_signature(self):
        return {key: tf.TensorSpec([None], tf.string, name=key) for key in ("first", "second")}

    def serve(self, inputs, context):
        return {
            "joined": tf.strings.join([inputs["first"], inputs["second"]], separator=" | "),
            "num_tokens": tf.cast(context.tokenize(inputs["first"]).row_lengths(), tf.int32),
        }


def test_a_correct_objective_passes_and_its_batch_is_returned():
    result = testing.run_objective_test(TokenCopy(), "bert", num_layers=1, sequence_length=16, batch_size=3)
    assert result["labels"].shape == (3, 16)
    np.testing.assert_array_equal(result["sample_weight"], result["batch"]["padding_mask"])


@pytest.mark.parametrize("objective, message", [
    (Unseeded(), r"unseeded.prepare called twice with the same seed: outputs differ"),
    (WeighsPadding(), r"weighs_padding: a row of padding only has sample weights"),
    (StrayKey(), r"stray_key.prepare added feature 'positions'; name the keys it adds stray_key_"),
])
def test_objective_mistakes_are_caught(objective, message):
    with pytest.raises(AssertionError, match=message):
        testing.run_objective_test(objective, "bert", num_layers=1, sequence_length=16, batch_size=3)


def test_a_task_whose_loss_cannot_fall_is_caught():
    with pytest.raises(AssertionError, match=r"frozen.*evaluated loss went from .* not down"):
        testing.run_task_test("bert", Frozen(), texts=default_corpus()[:48], num_layers=1, sequence_length=16,
                              epochs=1, mirrored=False)


def test_export_reloads_signatures_with_several_string_inputs(tmp_path):
    model = zoo.build("bert", objective=Pair(), num_layers=1, sequence_length=16)
    result = testing.run_export_test(model, tmp_path, texts=["alpha", "beta"])
    assert result["signatures"] == ["encode", "pair", "serving_default", "token_ids"]
    texts = ["alpha", "beta", *testing.EDGE_TEXTS]
    joined = [s.decode() for s in result["reloaded"]["pair"]["joined"]]
    assert joined == [f"{a} | {b}" for a, b in zip(texts, texts[1:] + texts[:1])]
    assert result["reloaded"]["pair"]["num_tokens"][2] == 0  # the empty text
    assert result["reloaded"]["token_ids"]["pair"].shape == (len(texts), 16, model.spec.vocabulary_size)


def test_the_guides_one_file_plugin_passes_the_checks():
    guide = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    source = guide.split("```python\n", 1)[1].split("```", 1)[0]
    module = types.ModuleType("zoo_rtd")
    exec(compile(source, "docs/plugins.md", "exec"), module.__dict__)
    objective = module.RandomTokenDetection(rate=0.3)
    result = testing.run_objective_test(objective, "bert", num_layers=1, sequence_length=32, batch_size=8)
    real = result["batch"]["padding_mask"] == 1
    assert abs(result["labels"][real].mean() - 0.3) < 0.08  # about `rate` of the tokens, few are special
    changed = result["features"]["token_ids"] != result["batch"]["token_ids"]
    np.testing.assert_array_equal(changed, result["labels"] == 1)
    with pytest.raises(zoo.errors.ConfigError, match=r"rtd: rate must be in \(0, 1\)"):
        module.RandomTokenDetection(rate=1.5)
    assert 'rtd = "zoo_rtd"' in guide and callable(module.zoo_register_objectives)
