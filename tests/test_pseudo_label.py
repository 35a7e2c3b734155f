"""pseudo_label: self-training on scarce labels, its step hook, its data format and its export."""

import shutil

import numpy as np
import pytest
import tensorflow as tf
import keras

import zoo
import zoo.testing
from zoo.checkpoints import RunCheckpoints
from zoo.objectives.pseudo_label import PseudoLabel, self_train
from zoo.text.corpus import split_held_out
from zoo.text.labeled import default_labeled_corpus, scarce_labels

TINY = {"num_layers": 1, "hidden_dim": 32, "sequence_length": 16, "precision": "float32"}
TRANSFORMER = {"num_heads": 2, "intermediate_dim": 64}


def tiny(model, **objective):
    extra = TRANSFORMER if model in ("bert", "gpt") else {}
    return zoo.build(model, objective={"pseudo_label": objective}, **TINY, **extra)


@pytest.fixture(scope="module")
def task_data():
    """asyncio vs email docstrings: 5% of the training texts labeled, the rest unlabeled, 25% held out."""
    texts, labels, classes = default_labeled_corpus(("asyncio", "email"))
    label_of = dict(zip(texts, labels))
    train, held_out = split_held_out(texts, 0.25)
    labeled, labeled_labels, unlabeled = scarce_labels(train, [label_of[t] for t in train], 0.05, seed=0)
    return {
        "classes": classes, "labeled": (labeled, labeled_labels), "unlabeled": unlabeled,
        "held_out": (held_out, [label_of[t] for t in held_out]),
    }


def test_labeled_corpus_is_a_balanced_enough_real_task():
    texts, labels, classes = default_labeled_corpus()
    counts = np.bincount(labels, minlength=len(classes))
    assert len(set(texts)) == len(texts) and counts.min() > 150, counts
    assert all(len(t.split()) >= 3 for t in texts)
    labeled, labeled_labels, unlabeled = scarce_labels(texts, labels, 0.05, seed=3)
    assert len(labeled) + len(unlabeled) == len(texts) and not set(labeled) & set(unlabeled)
    np.testing.assert_array_equal(np.bincount(labeled_labels), np.round(counts * 0.05))


@pytest.mark.parametrize("model", ["bert", "gpt", "lstm_lm", "autoencoder"])
def test_trains_on_every_text_backbone(model):
    keras.utils.set_random_seed(0)
    task = tiny(model, classes=["a", "b"], threshold=0.5, ramp_up_steps=0, unlabeled_ratio=2)
    texts = [f"alpha text number {i}" if i % 2 else f"beta words {i} here" for i in range(16)]
    labels = ["b" if i % 2 else "a" for i in range(16)]
    history = task.fit({"labeled": (texts, labels), "unlabeled": texts * 2}, batch_size=4, epochs=1, verbose=0)
    logs = {key: values[-1] for key, values in history.history.items()}
    assert np.isfinite(logs["loss"]) and 0 <= logs["pseudo_label_confident"] <= 1, logs
    assert len(history.epoch) == 1
    logits = task.predict(texts[:3], verbose=0)["pseudo_label"]
    assert logits.shape == (3, 2) and np.all(np.isfinite(logits))


def test_feature_vector_autoencoder_is_refused():
    with pytest.raises(zoo.ZooError, match="not text; pseudo_label classifies text"):
        zoo.build("autoencoder", objective="pseudo_label", input_dim=8)


@pytest.mark.parametrize("model,pooling", [("bert", "mean"), ("gpt", "mean"), ("bert", "last"),
                                           ("autoencoder", "mean"), ("lstm_lm", "pooled")])
def test_head_reads_the_vector_pooling_names(model, pooling):
    keras.utils.set_random_seed(0)
    task = tiny(model, classes=3, pooling=pooling, dropout=0.0)
    texts = ["a short text", "a much longer text with many more words in it", "x"]
    x = task.preprocessor.inference_features(tf.constant(texts))
    x = task.objectives[0].prepare_inference(x, task.spec)
    outputs = task.backbone({name: x[name] for name in task.spec.input_names})
    outputs = outputs if isinstance(outputs, dict) else {"sequence_output": outputs}  # gpt's one output
    mask = x["padding_mask"].numpy().astype("float32")
    sequence = outputs.get("sequence_output", outputs.get("encoder_sequence_output")).numpy()
    if pooling == "mean":
        vector = (sequence * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    elif pooling == "last":
        vector = sequence[np.arange(len(texts)), mask.sum(1).astype(int) - 1]
    else:
        vector = outputs["pooled_output"].numpy()
    assert len(set(mask.sum(1))) == 3  # three lengths: the padding is left out
    expected = task.objectives[0]._head(vector, training=False).numpy()
    np.testing.assert_allclose(task.predict(texts, verbose=0)["pseudo_label"], expected, atol=1e-5)


def test_bad_input_names_the_fix():
    task = tiny("bert", classes=["neg", "pos"])
    texts = ["good", "bad", "fine"]
    with pytest.raises(zoo.ZooError, match="3 texts but 2 labels"):
        task.fit(texts, ["pos", "neg"])
    with pytest.raises(zoo.ZooError, match="unknown pseudo_label class 'poz'; did you mean 'pos'"):
        task.fit(texts, ["pos", "neg", "poz"])
    with pytest.raises(zoo.ZooError, match="label 2 is out of range for 2 classes"):
        task.fit(texts, [0, 1, 2])
    with pytest.raises(zoo.ZooError, match="needs labeled texts"):
        task.fit(texts)
    with pytest.raises(zoo.ZooError, match="got keys"):
        task.fit({"labelled": (texts, [0, 1, 0])})
    with pytest.raises(zoo.ZooError, match="at least two distinct"):
        PseudoLabel(classes=["only"])
    with pytest.raises(zoo.ZooError, match="did you mean 'ema'"):
        PseudoLabel(teacher="emma")
    with pytest.raises(zoo.ZooError, match="did you mean 'mean'"):
        PseudoLabel(pooling="meen")
    with pytest.raises(zoo.ZooError, match="trains alone"):
        zoo.build("bert", objective=["mlm", "pseudo_label"], **TINY, **TRANSFORMER).fit(texts, [0, 1, 0])


def test_sigmoid_ramp_rises_from_zero_to_one():
    ramp = PseudoLabel(ramp="sigmoid", ramp_up_steps=100)
    values = [float(ramp.ramp_weight(step)) for step in (0, 50, 100, 1000)]
    assert values[0] == pytest.approx(np.exp(-5)) and values[1] == pytest.approx(np.exp(-1.25))
    assert values[2] == values[3] == 1.0
    assert float(PseudoLabel(ramp_up_steps=0).ramp_weight(0)) == 1.0


def test_step_equals_the_gradient_with_the_pseudo_labels_held_constant():
    """One SGD step moves the weights by the gradient of supervised + CE against fixed teacher labels.

    The teacher is the model in inference mode; its labels are constants: were any gradient to flow
    through them, or were the teacher in training mode, the update would differ.
    """
    keras.utils.set_random_seed(1)
    task = zoo.build("bert", objective={"pseudo_label": {"classes": 3, "threshold": 0.0, "ramp_up_steps": 0,
                                                         "unlabeled_weight": 2.0, "dropout": 0.0,
                                                         "noise_rate": 0.0, "balance": False}},
                     dropout=0.0, **TINY, **TRANSFORMER)
    task.compile(optimizer=keras.optimizers.SGD(0.5))
    texts = ["one text", "another one", "a third", "and more text", "fifth here", "six"]
    data = task.objectives[0].dataset(task, {"labeled": (texts[:2], [0, 2]), "unlabeled": texts[2:]}, None,
                                      batch_size=2, training=True)
    batch = next(iter(data))
    x, y, weights = batch
    np.testing.assert_array_equal(weights["pseudo_label"], [1, 1, 0, 0, 0, 0])
    pseudo = tf.argmax(task(x, training=False)["pseudo_label"], axis=-1, output_type=tf.int32)
    with tf.GradientTape() as tape:
        logits = task(x, training=True)["pseudo_label"]
        supervised = keras.losses.sparse_categorical_crossentropy(y["pseudo_label"][:2], logits[:2], from_logits=True)
        unlabeled = keras.losses.sparse_categorical_crossentropy(pseudo[2:], logits[2:], from_logits=True)
        loss = tf.reduce_mean(supervised) + 2.0 * tf.reduce_mean(unlabeled)
    gradients = tape.gradient(loss, task.trainable_weights)
    before = [w.numpy() for w in task.trainable_weights]
    logs = task.train_step(batch)
    assert float(logs["pseudo_label_confident"]) == 1.0  # threshold 0: every unlabeled row counts
    for weight, start, gradient in zip(task.trainable_weights, before, gradients):
        np.testing.assert_allclose(weight.numpy(), start - 0.5 * tf.convert_to_tensor(gradient).numpy(), atol=1e-5, err_msg=weight.path)


def test_class_balance_evens_out_a_teacher_leaning_to_one_class():
    objective = PseudoLabel(classes=["a", "b"])
    labels, labeled = tf.constant([0, 1, 0, 1, 0, 0, 0, 0, 0, 0]), tf.constant([1.0] * 4 + [0.0] * 6)
    pseudo, confident = tf.constant([0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), tf.constant([0.0] * 4 + [1.0] * 5 + [0.0])
    weights = (objective._class_weights(labels, labeled, pseudo, confident) * confident).numpy()
    # labeled share 1/2 each (add-one smoothed: 3/6); pseudo-label share 4/5 for a, 1/5 for b
    np.testing.assert_allclose(weights, [0] * 4 + [0.5 / 0.8] * 4 + [0.5 / 0.2, 0], rtol=1e-6)
    assert weights[4:8].sum() == pytest.approx(weights[8])  # each class weighs as much in total


def test_student_noise_hides_only_tokens_of_unlabeled_texts():
    task = tiny("bert", classes=2, noise_rate=0.3)
    objective, spec = task.objectives[0], task.spec
    words = " ".join(f"word{i}" for i in range(40))
    x = task.preprocessor.inference_features(tf.constant([words] * 64))
    unlabeled = tf.constant([0.0] * 8 + [1.0] * 56)
    noised = objective._noised(task, x, unlabeled)["token_ids"].numpy()
    changed = noised != x["token_ids"].numpy()
    assert not changed[:8].any() and set(noised[changed].tolist()) == {spec.special_token_ids["mask"]}
    real = (x["padding_mask"].numpy()[8:] > 0) & ~np.isin(x["token_ids"].numpy()[8:], spec.all_special_ids)
    assert not changed[8:][~real].any() and 0.25 < changed[8:][real].mean() < 0.35


class _WeightsBeforeEachStep(keras.callbacks.Callback):
    def __init__(self, model):
        super().__init__()
        self.weights_of, self.seen = model, []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append(self.weights_of.get_weights())


@pytest.mark.parametrize("model, pooling", [("lstm_lm", "pooled"), ("bert", "mean")])  # bert: its pooler is frozen
def test_threshold_share_is_logged_and_ema_teacher_averages_from_the_first_step(model, pooling):
    keras.utils.set_random_seed(0)
    task = tiny(model, classes=["a", "b"], threshold=1.0, teacher="ema", ema_decay=0.5, ramp_up_steps=0,
                pooling=pooling)
    teacher = task.objective_states["pseudo_label"].model
    assert {id(w) for w in task.weights}.isdisjoint(id(w) for w in teacher.weights)  # not part of the model
    texts = [f"sample {i}" for i in range(8)]
    # The data is made before the weights are loaded, as zoo train does with init_from: the
    # teacher must start from the weights the first step sees, not from those at build time.
    batches = task.objectives[0].dataset(task, {"labeled": (texts, [i % 2 for i in range(8)]), "unlabeled": texts},
                                         None, batch_size=4, training=True)
    keras.utils.set_random_seed(1)
    task.set_weights(tiny(model, classes=["a", "b"], pooling=pooling).get_weights())
    model_weights = keras.Model(task.input, task.output)  # the teacher's weights, in the same order
    before_each_step = _WeightsBeforeEachStep(model_weights)
    history = task.fit(batches, epochs=3, verbose=0, callbacks=[before_each_step])
    assert history.history["pseudo_label_confident"] == [0.0] * 3  # nothing reaches confidence 1.0
    expected = before_each_step.seen[0]  # each step moves the average toward the weights before it
    for weights in before_each_step.seen[1:]:
        expected = [0.5 * average + 0.5 * weight for average, weight in zip(expected, weights)]
    for average, value, path in zip(teacher.get_weights(), expected, [w.path for w in teacher.weights]):
        np.testing.assert_allclose(average, value, rtol=1e-6, atol=1e-6, err_msg=path)
    moved = [not np.allclose(t, s) for t, s in zip(teacher.get_weights(), model_weights.get_weights())]
    assert sum(moved) > len(moved) // 2  # the teacher lags the model


@pytest.mark.slow
def test_offline_rounds_label_the_unlabeled_texts(task_data):
    labeled, labels = task_data["labeled"]
    model, shares = self_train(
        lambda: tiny("bert", classes=task_data["classes"]), (labeled, labels), task_data["unlabeled"][:64],
        rounds=2, threshold=0.5, batch_size=8, epochs=2, verbose=0,
    )
    assert len(shares) == 2 and all(0 <= share <= 1 for share in shares)
    assert model.predict(labeled[:2], verbose=0)["pseudo_label"].shape == (2, len(task_data["classes"]))


@pytest.mark.slow
def test_classifier_endpoint_reloads_in_a_fresh_process(tmp_path):
    keras.utils.set_random_seed(0)
    task = tiny("gpt", classes=["neg", "pos"])
    task.fit(["good", "great", "bad", "awful"], ["pos", "pos", "neg", "neg"], batch_size=2, epochs=1, verbose=0)
    result = zoo.testing.run_export_test(task, tmp_path, texts=["good", "bad"])
    assert result["signatures"] == ["encode", "pseudo_label", "serving_default", "token_ids"]
    served = result["reloaded"]["serving_default"]
    assert set(served["label"].tolist()) <= {b"neg", b"pos"}
    np.testing.assert_allclose(served["probabilities"].sum(axis=1), 1.0, atol=1e-5)
    assert np.all(np.diff(served["scores"], axis=1) <= 0)
    np.testing.assert_array_equal(served["classes"][:, 0], served["label"])
    logits = task.predict(["good", "bad"], verbose=0)["pseudo_label"]
    np.testing.assert_allclose(result["expected"]["pseudo_label"]["probabilities"][:2],
                               tf.nn.softmax(logits).numpy(), atol=1e-5)


def _checkpoint_values(path) -> dict:
    reader = tf.train.load_checkpoint(str(path))
    return {name: reader.get_tensor(name) for name, dtype in reader.get_variable_to_dtype_map().items()
            if dtype != tf.string}  # not the object graph


@pytest.mark.slow
def test_a_resumed_run_continues_the_ema_teacher(tmp_path):
    overrides = [
        "model.num_layers=1", "model.hidden_dim=32", "model.intermediate_dim=64", "model.sequence_length=32",
        "training.batch_size=4", "training.steps=4", "training.checkpoint_every=2", "training.warmup_steps=1",
        "export.enabled=false", "objectives.pseudo_label.teacher=ema", "objectives.pseudo_label.ema_decay=0.5",
        "objectives.pseudo_label.threshold=0.0", "objectives.pseudo_label.ramp_up_steps=0",
    ]
    whole = zoo.train("bert-pseudo-label", out=tmp_path / "whole", overrides=overrides, verbose=0)
    shutil.copytree(tmp_path / "whole", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step-00000004")  # as if killed after step 2's checkpoint
    (tmp_path / "resumed" / "metrics.json").unlink()
    resumed = zoo.train("bert-pseudo-label", out=tmp_path / "resumed", overrides=overrides, verbose=0)
    assert resumed["resumed_from"] == 2 and resumed["steps"] == 4
    assert resumed["weights_digest"] == whole["weights_digest"]
    expected, got = (_checkpoint_values(tmp_path / run / "checkpoints" / "step-00000004" / "ckpt")
                     for run in ("whole", "resumed"))
    teacher = [name for name in expected if name.startswith("objective_states/pseudo_label/")]
    assert len(teacher) > 10 and sorted(got) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_ema_teacher_is_saved_with_the_task(tmp_path):
    keras.utils.set_random_seed(0)
    task = tiny("lstm_lm", classes=["a", "b"], teacher="ema", ema_decay=0.5, ramp_up_steps=0)
    texts = [f"sample {i}" for i in range(8)]
    task.fit({"labeled": (texts, [i % 2 for i in range(8)]), "unlabeled": texts}, batch_size=4, epochs=2, verbose=0)
    teacher = task.objective_states["pseudo_label"]
    averages = teacher.model.get_weights()
    assert any(not np.allclose(a, w) for a, w in zip(averages, keras.Model(task.input, task.output).get_weights()))
    RunCheckpoints(tmp_path / "checkpoints", task).save(step=2, data_position=2)
    task.save(tmp_path / "task.keras")

    keras.utils.set_random_seed(1)
    restored = tiny("lstm_lm", classes=["a", "b"], teacher="ema", ema_decay=0.5, ramp_up_steps=0)
    restored.optimizer.build(restored.trainable_variables)
    RunCheckpoints(tmp_path / "checkpoints", restored).restore()
    loaded = keras.saving.load_model(tmp_path / "task.keras")
    for again in (restored, loaded):
        state = again.objective_states["pseudo_label"]
        assert float(state.started.numpy()) == 1.0  # continues the average, does not copy the weights again
        for average, value in zip(state.model.get_weights(), averages):
            np.testing.assert_array_equal(average, value)
