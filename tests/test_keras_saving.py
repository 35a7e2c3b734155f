"""Tasks saved whole in Keras's format (``model.save("task.keras")``) and loaded with ``keras.saving.load_model``."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.objectives.mlm import MaskedLM
from zoo.text.corpus import default_corpus

TEXTS = ["The [MASK] sat on the mat.", "An [MASK] with [MASK] masks.", ""]


def trained_batches(model, count=2):
    """The first `count` training batches of the default corpus, the same for every copy of `model`."""
    return list(model.preprocessor.training_dataset(default_corpus()[:64], 8, shuffle=False).take(count))


def train_on(model, batches):
    for x, y, sample_weight in batches:
        model.train_on_batch(x, y, sample_weight)


@pytest.mark.slow
def test_loaded_in_a_fresh_process_predicts_the_same_and_trains_on_alike(tmp_path):
    keras.utils.set_random_seed(0)
    model = zoo.build("bert", objective={"mlm": {"mask_rate": 0.25}}, sequence_length=32, num_layers=1,
                      dropout=0.0, precision="float32")
    model.fit(default_corpus()[:64], batch_size=8, steps_per_epoch=3, verbose=0)
    model.save(tmp_path / "task.keras")
    # The fresh process has an empty tokenizer cache: the tokenizer must come from the file.
    script = textwrap.dedent(f"""
        import json, pathlib, sys
        import keras, numpy as np
        import zoo
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_keras_saving import TEXTS, trained_batches, train_on
        model = keras.saving.load_model({str(tmp_path / "task.keras")!r})
        np.save({str(tmp_path / "predicted.npy")!r}, model.predict(TEXTS, verbose=0)["mlm"])
        facts = {{"type": type(model).__name__, "objectives": [o.get_config() for o in model.objectives],
                  "iterations": int(model.optimizer.iterations), "sequence_length": model.sequence_length,
                  "cache": sorted(p.name for p in pathlib.Path({str(tmp_path / "cache")!r}).glob("*"))}}
        keras.utils.set_random_seed(0)  # the pipeline's streams depend on TensorFlow's global seed too
        train_on(model, trained_batches(model))
        np.savez({str(tmp_path / "trained.npz")!r}, *model.get_weights())
        print(json.dumps(facts))
    """)
    (tmp_path / "cache").mkdir()
    environment = {**os.environ, "ZOO_CACHE_DIR": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts == {"type": "Task", "objectives": [{"mask_rate": 0.25}], "iterations": 3, "sequence_length": 32,
                     "cache": []}
    np.testing.assert_allclose(np.load(tmp_path / "predicted.npy"), model.predict(TEXTS, verbose=0)["mlm"],
                               rtol=1e-5, atol=1e-5)
    # Two more steps from the same state: equal weights only if the optimizer's moments came back too.
    train_on(model, trained_batches(model))
    trained = np.load(tmp_path / "trained.npz")
    for index, weight in enumerate(model.get_weights()):
        np.testing.assert_allclose(trained[f"arr_{index}"], weight, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_name, objective, texts", [
    ("gpt", {"clm": {"loss_weight": 0.5}}, ["The cat", "ünïcode ✓", ""]),
    ("autoencoder", "denoising", ["The cat sat on the mat.", ""]),
])
def test_tokenizer_objectives_and_outputs_come_back(model_name, objective, texts, tmp_path):
    model = zoo.build(model_name, objective=objective, sequence_length=16, num_layers=1, precision="float32")
    model.save(tmp_path / "task.keras")
    loaded = keras.saving.load_model(tmp_path / "task.keras")
    assert loaded.tokenizer.get_config() == model.tokenizer.get_config()
    assert [(o.name, o.get_config()) for o in loaded.objectives] == [(o.name, o.get_config()) for o in model.objectives]
    assert loaded.build_arguments == model.build_arguments
    expected, actual = model.predict(texts, verbose=0), loaded.predict(texts, verbose=0)
    assert sorted(actual) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-5)


def test_a_task_that_cannot_be_saved_says_why_and_leaves_the_saved_file(tmp_path):
    path = tmp_path / "task.keras"
    zoo.build("bert", objective="mlm", sequence_length=16, num_layers=1).save(path)
    saved = path.read_bytes()

    class Unregistered(MaskedLM):
        name = "unregistered_mlm"

    model = zoo.build("bert", objective=Unregistered(), sequence_length=16, num_layers=1)
    with pytest.raises(zoo.ZooError, match="'unregistered_mlm'.*register it through a plugin"):
        model.save(path)
    assert path.read_bytes() == saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task.keras"]  # no temporary file left


def test_the_compile_arguments_come_back_with_auto_where_zoo_chose(tmp_path):
    model = zoo.build("bert", objective="mlm", sequence_length=16, num_layers=1)
    loaded_default = keras.saving.load_model(_saved(model, tmp_path / "default.keras"))
    # "auto": zoo's AdamW, which leaves biases and layer norms out of weight decay.
    excluded = [v.path for v in loaded_default.trainable_variables
                if not loaded_default.optimizer._use_weight_decay(v)]
    assert excluded and all(v.endswith(("bias", "gamma", "beta")) for v in excluded)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), steps_per_execution=2)
    model.fit(default_corpus()[:64], batch_size=8, steps_per_epoch=4, verbose=0)
    loaded = keras.saving.load_model(_saved(model, tmp_path / "sgd.keras"))
    assert type(loaded.optimizer).__name__ == "SGD" and loaded.optimizer.momentum == 0.9
    assert int(loaded.optimizer.iterations) == 4 and loaded.steps_per_execution == 2
    assert type(keras.models.clone_model(model)).__name__ == "Functional"  # Keras's clone still compiles its copy


def test_load_model_without_compiling_gives_the_weights_and_no_training_state(tmp_path):
    model = zoo.build("gpt", objective="clm", sequence_length=16, num_layers=1, precision="float32")
    loaded = keras.saving.load_model(_saved(model, tmp_path / "task.keras"), compile=False)
    assert not loaded.compiled and not hasattr(loaded, "optimizer")  # the saved optimizer state is not loaded
    for saved, weight in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, weight)
    np.testing.assert_allclose(loaded.predict(TEXTS, verbose=0)["clm"], model.predict(TEXTS, verbose=0)["clm"],
                               rtol=1e-5, atol=1e-5)
    assert not keras.saving.load_model(_saved(loaded, tmp_path / "weights_only.keras")).compiled


def test_what_a_users_optimizer_leaves_out_of_weight_decay_comes_back(tmp_path):
    model = zoo.build("bert", objective="mlm", sequence_length=16, num_layers=1)
    optimizer = keras.optimizers.AdamW(1e-3, weight_decay=0.1)
    model.compile(optimizer=optimizer)
    optimizer.exclude_from_weight_decay(var_list=model.trainable_variables[:1], var_names=["gamma", "beta"])
    loaded = keras.saving.load_model(_saved(model, tmp_path / "task.keras"))

    def spared(task):
        return [index for index, variable in enumerate(task.trainable_variables)
                if not task.optimizer._use_weight_decay(variable)]

    assert type(loaded.optimizer).__name__ == "AdamW" and loaded.optimizer.weight_decay == 0.1
    assert spared(loaded) == spared(model)
    assert 0 in spared(loaded) and all(
        loaded.trainable_variables[index].path.endswith(("gamma", "beta")) for index in spared(loaded)[1:]
    )


def test_a_path_keras_could_not_load_a_task_from_is_refused(tmp_path):
    (tmp_path / "folder.keras").mkdir()
    (tmp_path / "folder.keras" / "mine.txt").write_text("mine")
    model = zoo.build("gpt", objective="clm", sequence_length=16, num_layers=1)
    for name in ("task.h5", "task", "folder.keras"):
        with pytest.raises(zoo.ZooError, match="saves whole as one .keras file"):
            model.save(tmp_path / name)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["folder.keras", "folder.keras/mine.txt"]


def _saved(model, path):
    model.save(path)
    return path


def test_objective_arguments_are_recorded_and_must_be_json_values():
    class Scaled(MaskedLM):
        name = "scaled_mlm"

        def __init__(self, scale, *, transform=None, **kwargs):
            super().__init__(**kwargs)
            self.scale, self.transform = scale, transform

    assert Scaled(2, mask_rate=0.3).get_config() == {"scale": 2, "mask_rate": 0.3}
    assert type(Scaled(2))(**Scaled(2, loss_weight=0.5).get_config()).loss_weight == 0.5
    with pytest.raises(zoo.ZooError, match=r"scaled_mlm: argument transform=<function .*not a JSON value"):
        Scaled(2, transform=tf.identity).get_config()
