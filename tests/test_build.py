"""zoo.build on raw text: every compatible pair trains, predicts and distributes."""

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.distribute import mirrored_strategy
from zoo.testing import EDGE_TEXTS, run_task_test
from zoo.text.corpus import default_corpus

PAIRS = [("bert", "mlm"), ("gpt", "clm"), ("lstm_lm", "clm")]


@pytest.fixture(scope="module")
def texts():
    return default_corpus()[:300]


@pytest.fixture(scope="module")
def small_bert():
    """A one-layer BERT for checks that fail before any step (so sharing it changes nothing)."""
    return zoo.build("bert", objective="mlm", sequence_length=16, num_layers=1)


@pytest.fixture(scope="module")
def small_gpt():
    """A one-layer GPT for checks that fail before any step, and for predict."""
    return zoo.build("gpt", objective="clm", sequence_length=16, num_layers=1)


@pytest.mark.parametrize("model_name, objective", PAIRS)
def test_fit_on_raw_strings_lowers_the_loss(model_name, objective, texts):
    # Also: every metric reported, predict on raw strings in order (empty and non-ASCII too).
    result = run_task_test(model_name, objective, texts=texts, sequence_length=64, batch_size=16, epochs=3,
                           min_improvement=0.5, mirrored=False)
    assert f"{objective}_accuracy" in result["after"]


def test_mlm_predict_returns_logits_at_each_written_mask():
    model = zoo.build("bert", objective="mlm", sequence_length=32)
    mask = "[MASK]"
    logits = model.predict([f"the {mask} of the {mask}", "no masks here", ""], verbose=0)
    assert set(logits) == {"mlm"}
    assert logits["mlm"].shape == (3, model.objectives[0].max_predictions_for(32), model.spec.vocabulary_size)
    assert np.all(np.isfinite(logits["mlm"]))


@pytest.mark.parametrize("model_name", ["gpt", "lstm_lm"])
def test_clm_predict_returns_next_token_logits_per_position(model_name):
    model = zoo.build(model_name, objective="clm", sequence_length=24)
    logits = model.predict(["a short text", "a much longer text " * 20], batch_size=2, verbose=0)
    assert logits["clm"].shape == (2, 24, model.spec.vocabulary_size)


@pytest.mark.parametrize("call", ["fit", "train_on_batch"])
def test_training_traces_the_step_once(call, texts):
    # A first step that made the optimizer's variables was traced twice: once more without making them.
    task = zoo.build("bert", objective="mlm", sequence_length=16, num_layers=1)
    traced, keras_step = [], task.train_step
    task.train_step = lambda data: traced.append(data) or keras_step(data)
    if call == "fit":
        task.fit(texts[:8], batch_size=8, epochs=2, verbose=0)
    else:
        for batch in task.preprocessor.training_dataset(texts[:8], batch_size=8).take(3):
            task.train_on_batch(*batch)
    assert len(traced) == 1 and task.optimizer.iterations.numpy() > 2


def test_predict_keeps_input_order_whether_it_tokenizes_a_list_at_once_or_streams(monkeypatch):
    model = zoo.build("gpt", objective="clm", sequence_length=16, num_layers=1)
    texts = [f"document number {i}" for i in range(10)] + list(EDGE_TEXTS)
    together = model.predict(texts, batch_size=4, verbose=0)["clm"]
    alone = model.predict(texts[7:8], verbose=0)["clm"]
    np.testing.assert_allclose(together[7], alone[0], rtol=1e-4, atol=1e-4)
    # Lists of any length are tokenized by one function, traced once.
    assert model.preprocessor._inference_function.experimental_get_tracing_count() == 1
    streamed = model.predict(tf.data.Dataset.from_tensor_slices(texts), batch_size=4, verbose=0)["clm"]
    np.testing.assert_allclose(streamed, together, rtol=1e-4, atol=1e-4)
    monkeypatch.setattr(zoo.task, "PREDICT_ARRAY_LIMIT", 4)  # a longer list streams too
    np.testing.assert_allclose(model.predict(texts, batch_size=4, verbose=0)["clm"], together, rtol=1e-4, atol=1e-4)


def test_fit_under_mirrored_strategies_on_two_cpus_one_after_another(texts):
    # TensorFlow numbers the collectives of every MirroredStrategy in a process from the same
    # key, so a second strategy's all-reduce met the first one's and failed on their shapes.
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "conftest configures two logical CPUs"
    for model_name, objective in (("bert", "mlm"), ("gpt", "clm")):
        tf.keras.utils.set_random_seed(0)
        strategy = mirrored_strategy(devices)
        with strategy.scope():
            model = zoo.build(model_name, objective=objective, sequence_length=32, num_layers=1,
                              hidden_dim=32, intermediate_dim=64)
        history = model.fit(texts[:100], batch_size=8, epochs=2, verbose=0)
        assert strategy.num_replicas_in_sync == 2
        assert np.isfinite(history.history["loss"]).all()
        assert history.history["loss"][-1] < history.history["loss"][0]


def test_steps_compiled_whole_by_xla_train_every_family(texts):
    # On a GPU or TPU, Keras's jit_compile="auto" compiles the whole training step (zoo's
    # own XLA functions nested inside it); on a CPU-only machine it never does, so force it.
    # Both precisions a GPU's `auto` can pick, each on two families.
    runs = [("bert", "mlm", "float32"), ("gpt", "clm", "mixed_bfloat16"), ("lstm_lm", "clm", "mixed_bfloat16"),
            ("autoencoder", "denoising", "float32")]
    for model_name, objective, precision in runs:
        tf.keras.utils.set_random_seed(0)
        model = zoo.build(model_name, objective=objective, sequence_length=32, precision=precision,
                          **({"num_layers": 1, "hidden_dim": 32, "intermediate_dim": 64, "num_heads": 2}
                             if model_name in ("bert", "gpt") else {}))
        model.compile(jit_compile=True)
        assert model.jit_compile is True, model_name
        history = model.fit(texts, batch_size=8, epochs=2, steps_per_epoch=8, verbose=0)
        losses = history.history["loss"]
        assert np.isfinite(losses).all() and losses[-1] < losses[0], (model_name, precision, losses)


def test_labels_for_self_supervised_fit_are_rejected(texts):
    model = zoo.build("gpt", objective="clm", sequence_length=16)
    with pytest.raises(zoo.ZooError, match="make their own labels"):
        model.fit(texts, y=[0] * len(texts))


@pytest.mark.parametrize("call", ["fit", "evaluate", "predict"])
@pytest.mark.parametrize("data, message", [
    ("The [MASK] sat.", "got a single string; wrap it in a list"),
    (tf.constant("The [MASK] sat."), "got a single string; wrap it in a list"),
    ([1, 2, 3], "expected strings, got int; pass raw text"),
    (["text", 2.5], "expected strings, got float"),
    ([], "no text given"),
    (None, "no input given"),
    ([["a"], ["b"]], "got a list of lists"),
])
def test_what_is_not_a_list_of_texts_is_named(call, data, message, small_bert):
    with pytest.raises(zoo.ZooError, match=message):
        getattr(small_bert, call)(data, verbose=0)


@pytest.mark.parametrize("call, data, arguments, message", [
    ("fit", ["", "  ", "\n"], {}, "every text is empty or whitespace"),
    ("evaluate", [" "], {}, "every text is empty or whitespace"),
    ("fit", ["some text"], {"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ("predict", ["some text"], {"batch_size": -1}, "batch_size must be a positive integer, got -1"),
    ("fit", ["some text"] * 4, {"validation_split": 0.25}, "pass the held-out texts as validation_data"),
])
def test_inputs_keras_would_fail_on_late_are_named_first(call, data, arguments, message, small_gpt):
    with pytest.raises(zoo.ZooError, match=message):
        getattr(small_gpt, call)(data, verbose=0, **arguments)


def test_a_string_tensor_is_text_like_a_list(small_gpt):
    texts = ["The cat sat.", "ünïcode"]
    np.testing.assert_array_equal(small_gpt.predict(tf.constant(texts), verbose=0)["clm"],
                                  small_gpt.predict(texts, verbose=0)["clm"])


@pytest.mark.parametrize("arguments, message", [
    ({"objective": {}}, "objective is an empty dict"),
    ({"objective": {"mlm": 0.2}}, "the parameters of mlm must be a dict"),
    ({"sequence_length": "32"}, "sequence_length must be an integer >= 2, got '32'"),
    ({"sequence_length": 32.5}, "sequence_length must be an integer >= 2, got 32.5"),
    ({"seed": -1}, "seed must be an integer from 0 to 4294967295, got -1"),
])
def test_build_arguments_of_the_wrong_kind_are_named(arguments, message):
    with pytest.raises(zoo.ZooError, match=message):
        zoo.build("bert", **arguments)


def test_sequence_length_beyond_the_model_is_an_error():
    with pytest.raises(zoo.ZooError, match="max_sequence_length"):
        zoo.build("bert", objective="mlm", sequence_length=4096)


def test_an_objective_state_that_is_not_a_built_layer_is_named():
    from zoo.objectives.clm import CausalLM

    class KeepsAFloat(CausalLM):
        def build_state(self, task):
            return {"average": 0.0}

    with pytest.raises(zoo.ZooError, match="clm: build_state returned dict; return a built keras.layers.Layer"):
        zoo.build("gpt", objective=KeepsAFloat(), num_layers=1)


def test_fit_takes_a_dataset_of_strings_batched_or_not(texts):
    model = zoo.build("gpt", objective="clm", sequence_length=32)
    for dataset in (tf.data.Dataset.from_tensor_slices(texts[:64]), tf.data.Dataset.from_tensor_slices(texts[:64]).batch(5)):
        history = model.fit(dataset, batch_size=8, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])


def test_default_objective_is_the_familys_own():
    assert [o.name for o in zoo.build("bert").objectives] == ["mlm"]
    assert [o.name for o in zoo.build("lstm_lm").objectives] == ["clm"]
