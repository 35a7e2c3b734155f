"""Checks a plugin author runs on an objective, a task and its export.

Each helper raises ``AssertionError`` naming what is wrong, so it reads as
a failed test under pytest, and returns what it measured for further
assertions::

    # tests/test_my_objective.py of a plugin distribution
    import zoo.testing
    from my_package import MyObjective

    def test_data_half():
        zoo.testing.run_objective_test(MyObjective(), "bert", num_layers=1)

    def test_training():
        zoo.testing.run_task_test("bert", MyObjective(), num_layers=1)

    def test_export(tmp_path):
        model = zoo.build("bert", objective=MyObjective(), num_layers=1)
        zoo.testing.run_export_test(model, tmp_path)

``run_task_test`` trains under ``MirroredStrategy`` on two logical CPUs:
call :func:`use_two_logical_cpus` in ``conftest.py``, before TensorFlow
runs anything. The helpers use only zoo's public API.
"""

from __future__ import annotations

import pathlib
import pickle
import subprocess
import sys
import tempfile
import textwrap

import keras
import numpy as np
import tensorflow as tf

from zoo import registry
from zoo.builder import build
from zoo.distribute import mirrored_strategy
from zoo.errors import ConfigError, IncompatibleError
from zoo.export import export, serving_functions
from zoo.objective import Objective
from zoo.text.corpus import default_corpus

#: Texts every helper adds to the ones it is given: empty, non-ASCII, longer than any sequence.
EDGE_TEXTS = ("", "naïve café — 東京 ünïcödé 🙂", "word " * 300)

#: The script ``run_export_test`` runs in a fresh interpreter: only tensorflow and tensorflow_text.
RELOAD_SCRIPT = textwrap.dedent('''
    import pickle, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
    path, inputs_file, outputs_file = sys.argv[1:]
    with open(inputs_file, "rb") as f:
        inputs = pickle.load(f)
    model = tf.saved_model.load(path)
    result = {"signatures": sorted(model.signatures), "input_names": {}, "outputs": {}}
    for name, signature in model.signatures.items():
        names = sorted(signature.structured_input_signature[1])
        result["input_names"][name] = names
        if name in inputs and sorted(inputs[name]) == names:
            feed = {key: tf.constant(inputs[name][key]) for key in names}
            result["outputs"][name] = {key: value.numpy() for key, value in signature(**feed).items()}
    result["imported"] = sorted({"zoo", "keras_hub"} & {m.split(".")[0] for m in sys.modules})
    with open(outputs_file, "wb") as f:
        pickle.dump(result, f)
''')


def use_two_logical_cpus() -> None:
    """Split the first CPU into two logical devices, for ``MirroredStrategy`` with two replicas.

    Call it before TensorFlow initialises its devices (at the top of
    ``conftest.py``); calling it again is harmless.

    Example:
        >>> use_two_logical_cpus()
        >>> len(tf.config.list_logical_devices("CPU")) >= 2
        True
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or ()) >= 2:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    except RuntimeError:
        raise ConfigError(
            "TensorFlow already initialised its devices; call zoo.testing.use_two_logical_cpus() "
            "at the top of conftest.py, before anything runs TensorFlow"
        ) from None


def run_objective_test(objective, model: str = "bert", *, texts=None, sequence_length: int = 32,
                       batch_size: int = 4, seed: int = 0, **overrides) -> dict:
    """Check an objective's data half on a real backbone, and its capability check.

    Checks, on a batch out of the structure stage of a task of `model`
    with this objective alone:

    - ``prepare`` called directly equals ``prepare`` inside ``Dataset.map``,
      and the same seed gives the same output (and a structure stage, if
      the objective has one, gives the same examples for the same seed);
    - the features it returns hold every model input with the model's
      dtype and batch size, and any key it adds (other than a backbone
      input, such as ``decoder_token_ids``) starts with its name;
    - labels and float32 sample weights have the batch size, the weights'
      shape is a prefix of the labels', and the head on those inputs gives
      a finite loss;
    - a row of padding only carries no weight, nor does any padding
      position where weights are per token;
    - every registered model family that lacks a capability the objective
      requires is refused with :class:`zoo.errors.IncompatibleError`.

    Args:
        objective: a :class:`zoo.Objective` instance or a registered name.
        model: a registered model family with what the objective requires.
        texts: documents to draw the batch from; default: the embedded corpus.
        sequence_length: length of the examples.
        batch_size: rows of the batch.
        seed: seed of the pipeline and of ``prepare``.
        **overrides: options of the model family (``num_layers=1``).

    Returns:
        ``{"batch", "features", "labels", "sample_weight"}``: the batch given
        to ``prepare`` and what it returned, as NumPy values.

    Example:
        >>> run_objective_test("mlm", "bert", num_layers=1)["labels"].shape  # doctest: +SKIP
        (4, 5)
    """
    task = build(model, objective=objective, sequence_length=sequence_length, seed=seed, **overrides)
    instance, spec = task.objectives[0], task.spec
    name = instance.name
    texts = list(texts) if texts is not None else default_corpus()[:64]
    batch = next(iter(task.preprocessor.example_batches(texts, batch_size)))
    _check(tf.shape(batch["token_ids"])[0] == batch_size,
           f"{name}: fewer than {batch_size} examples from {len(texts)} texts; pass more texts")
    if type(instance).structure is not Objective.structure:
        again = next(iter(task.preprocessor.example_batches(texts, batch_size)))
        _check_equal(batch, again, f"{name}.structure with the same seed")
        _check_structure_keys(name, batch, sequence_length, spec)

    prepare_seed = tf.constant([seed, 1], tf.int64)
    direct = instance.prepare(dict(batch), spec, prepare_seed)
    repeated = instance.prepare(dict(batch), spec, prepare_seed)
    mapped = next(iter(tf.data.Dataset.from_tensors(batch).map(lambda f: instance.prepare(f, spec, prepare_seed))))
    _check_equal(direct, repeated, f"{name}.prepare called twice with the same seed")
    _check_equal(direct, mapped, f"{name}.prepare called directly and inside Dataset.map")

    features, labels, weights = direct
    for key in set(features) - set(batch) - set(spec.input_names):  # backbone inputs keep their names
        _check(key.startswith(name), f"{name}.prepare added feature {key!r}; name the keys it adds {name}_...")
    for key, tensor in task.input.items():
        _check(key in features, f"{name}.prepare returned no {key!r}, which the model takes")
        _check(features[key].dtype == tf.as_dtype(tensor.dtype),
               f"{name}: feature {key!r} is {features[key].dtype.name}, the model takes {tensor.dtype}")
        _check(features[key].shape[0] == batch_size, f"{name}: feature {key!r} has shape {features[key].shape}")
    _check(isinstance(labels, tf.Tensor) and labels.shape[0] == batch_size,
           f"{name}: labels must be one tensor with a row per example, got {labels!r}")
    _check(isinstance(weights, tf.Tensor) and weights.dtype == tf.float32,
           f"{name}: sample weights must be one float32 tensor, got {weights!r}")
    _check(weights.shape.as_list() == labels.shape.as_list()[: weights.shape.rank],
           f"{name}: sample weights of shape {weights.shape} do not fit labels of shape {labels.shape}")
    _check(bool(tf.reduce_any(weights > 0)), f"{name}: every sample weight of the batch is 0")
    # In a tf.function, as fit and predict call it (eager calls of keras-hub heads fail under mixed bfloat16).
    outputs = tf.function(lambda inputs: task(inputs, training=False))({key: features[key] for key in task.input})
    outputs = tf.cast(outputs[name], tf.float32)
    loss = instance.loss()(labels, outputs, sample_weight=weights)
    _check(loss.shape.rank == 0 and bool(tf.math.is_finite(loss)), f"{name}: loss on this batch is {loss}")

    _check_padding_has_no_weight(instance, spec, batch, prepare_seed)
    _check_incompatible_models_refused(instance)
    return {
        "batch": _numpy(batch),
        "features": _numpy(features),
        "labels": labels.numpy(),
        "sample_weight": weights.numpy(),
    }


def run_task_test(model: str, objective, *, texts=None, sequence_length: int = 32, batch_size: int = 8,
                  epochs: int = 3, min_improvement: float = 0.0, mirrored: bool = True, saving: bool = True,
                  seed: int = 0, **overrides) -> dict:
    """Check that a task of `model` and `objective` trains, predicts, saves and distributes.

    Checks that ``fit`` on raw strings lowers the evaluated loss by more
    than `min_improvement` (and the last epoch's loss is below the
    first's), that every metric of every objective is reported, that
    ``predict`` on raw strings (empty and non-ASCII ones too) gives one
    finite row per string in input order, with ``saving=True`` that the
    trained task saved with ``task.save("task.keras")`` and loaded with
    ``keras.saving.load_model`` predicts the same, and, with ``mirrored=True``,
    that the task built under ``MirroredStrategy`` on two logical CPUs
    trains with a falling, finite loss.

    Args:
        model: a registered model family.
        objective: what :func:`zoo.build` takes: a name, an instance, a list.
        texts: training documents; default: 300 of the embedded corpus.
        sequence_length, batch_size, epochs: of the training run.
        min_improvement: how much the evaluated loss must fall.
        mirrored: also train under ``MirroredStrategy`` (needs
            :func:`use_two_logical_cpus`).
        saving: also save and load the trained task (its objectives must
            be registered, as a plugin's are once installed).
        seed: Keras's global seed and the pipeline's.
        **overrides: options of the model family (``num_layers=1``).

    Returns:
        ``{"before", "after", "history", "predictions", "mirrored_history"}``:
        evaluate's dicts, fit's loss per epoch, predict's dict, and the loss
        per epoch under ``MirroredStrategy`` (``None`` without it).

    Example:
        >>> run_task_test("gpt", "clm", num_layers=1)["after"]["loss"]  # doctest: +SKIP
        6.1
    """
    texts = list(texts) if texts is not None else default_corpus()[:300]
    tf.keras.utils.set_random_seed(seed)
    task = build(model, objective=objective, sequence_length=sequence_length, seed=seed, **overrides)
    names = [o.name for o in task.objectives]
    before = task.evaluate(texts, batch_size=batch_size, return_dict=True, verbose=0)
    history = task.fit(texts, batch_size=batch_size, epochs=epochs, verbose=0).history["loss"]
    after = task.evaluate(texts, batch_size=batch_size, return_dict=True, verbose=0)
    _check(np.all(np.isfinite(history)), f"{model} + {names}: non-finite training loss {history}")
    _check(after["loss"] < before["loss"] - min_improvement,
           f"{model} + {names}: evaluated loss went from {before['loss']:.4f} to {after['loss']:.4f}, "
           f"not down by more than {min_improvement}")
    _check(history[-1] < history[0], f"{model} + {names}: training loss did not fall: {history}")
    for instance in task.objectives:
        for metric in instance.metrics():
            reported = f"{instance.name}_{metric.name.removeprefix(instance.name + '_')}"
            _check(reported in after, f"{model} + {names}: metric {reported!r} not reported; got {sorted(after)}")

    queries = [texts[0], *EDGE_TEXTS, texts[1]]
    predictions = task.predict(queries, batch_size=2, verbose=0)
    _check(isinstance(predictions, dict) and sorted(predictions) == sorted(names),
           f"{model} + {names}: predict returned {type(predictions).__name__} keyed {sorted(predictions)}")
    alone = task.predict(queries[2:3], verbose=0)
    # bfloat16 and float16 kernels round differently at another batch size.
    tolerance = 1e-4 if task.dtype_policy.compute_dtype == "float32" else 5e-2
    for key, value in predictions.items():
        _check(value.shape[0] == len(queries), f"{key}: predict gave {value.shape[0]} rows for {len(queries)} texts")
        _check(np.all(np.isfinite(value)), f"{key}: predict on raw strings gave non-finite values")
        _check(np.allclose(value[2], alone[key][0], rtol=tolerance, atol=tolerance),
               f"{key}: predict of a text in a batch differs from predict of it alone (row order?)")

    if saving:
        with tempfile.TemporaryDirectory() as folder:
            path = pathlib.Path(folder) / "task.keras"
            task.save(path)
            reloaded = keras.saving.load_model(path).predict(queries, batch_size=2, verbose=0)
        for key, value in predictions.items():
            _check(np.allclose(reloaded[key], value, rtol=tolerance, atol=tolerance),
                   f"{key}: the task saved (task.save) and loaded (keras.saving.load_model) predicts differently")

    mirrored_history = None
    if mirrored:
        devices = [device.name for device in tf.config.list_logical_devices("CPU")][:2]
        _check(len(devices) == 2, "MirroredStrategy needs two logical CPUs: call "
               "zoo.testing.use_two_logical_cpus() at the top of conftest.py")
        tf.keras.utils.set_random_seed(seed)
        strategy = mirrored_strategy(devices)
        with strategy.scope():
            distributed = build(model, objective=objective, sequence_length=sequence_length, seed=seed, **overrides)
        _check(strategy.num_replicas_in_sync == 2, "MirroredStrategy did not get two replicas")
        mirrored_history = distributed.fit(texts, batch_size=batch_size, epochs=2, verbose=0).history["loss"]
        _check(np.all(np.isfinite(mirrored_history)) and mirrored_history[-1] < mirrored_history[0],
               f"{model} + {names} under MirroredStrategy: loss per epoch {mirrored_history}")
    return {"before": before, "after": after, "history": history, "predictions": predictions,
            "mirrored_history": mirrored_history}


def run_export_test(model, directory, *, texts=None, top_k: int = 5, max_new_tokens: int = 4,
                    atol: float = 1e-5, timeout: float = 300) -> dict:
    """Export `model`, reload it in a fresh Python process, and compare every signature.

    The fresh process imports only ``tensorflow`` and ``tensorflow_text``
    (never zoo or keras-hub), loads the SavedModel and calls each
    signature: those taking only strings on raw text (the given texts plus
    empty, non-ASCII and over-long ones; a signature with several string
    inputs, read from the signature, gets a different rotation of them in
    each), the others on the model's inference inputs of the same texts.
    Its outputs must equal the in-process functions of
    :func:`zoo.export.serving_functions`: strings exactly, numbers to
    `atol` (absolute and relative), and the reloaded SavedModel must have
    exactly their signatures.

    Args:
        model: a task from :func:`zoo.build`.
        directory: a folder to export into (``saved_model/`` is made there).
        texts: texts to serve; default: one with the mask token (if the
            tokenizer has one) and a short one, plus :data:`EDGE_TEXTS`.
        top_k, max_new_tokens: passed to :func:`zoo.export`.
        atol: tolerance of numeric outputs.
        timeout: seconds the fresh process may take.

    Returns:
        ``{"path", "signatures", "expected", "reloaded"}``: the export
        folder, the signature names, and per signature the outputs
        in-process and reloaded, as NumPy arrays.

    Example:
        >>> import tempfile, zoo
        >>> model = zoo.build("gpt", objective="clm", num_layers=1, sequence_length=16)  # doctest: +SKIP
        >>> run_export_test(model, tempfile.mkdtemp())["signatures"]  # doctest: +SKIP
        ['clm', 'encode', 'serving_default', 'token_ids']
    """
    directory = pathlib.Path(directory)
    texts = [*(texts if texts is not None else _default_serving_texts(model)), *EDGE_TEXTS]
    functions = serving_functions(model, top_k=top_k, max_new_tokens=max_new_tokens)
    inputs, expected = {}, {}
    for name, (function, signature) in functions.items():
        inputs[name] = _signature_inputs(model, name, signature, texts)
        outputs = function({key: tf.constant(value) for key, value in inputs[name].items()})
        expected[name] = {key: value.numpy() for key, value in outputs.items()}
    path = export(model, directory / "saved_model", top_k=top_k, max_new_tokens=max_new_tokens)

    inputs_file, outputs_file, script = directory / "inputs.pkl", directory / "outputs.pkl", directory / "reload.py"
    inputs_file.write_bytes(pickle.dumps(inputs))
    script.write_text(RELOAD_SCRIPT)
    process = subprocess.run([sys.executable, str(script), str(path), str(inputs_file), str(outputs_file)],
                             capture_output=True, text=True, timeout=timeout)
    _check(process.returncode == 0, f"reloading the SavedModel in a fresh process failed:\n{process.stderr[-3000:]}")
    result = pickle.loads(outputs_file.read_bytes())
    _check(not result["imported"], f"the fresh process imported {result['imported']} to load the SavedModel")
    _check(result["signatures"] == sorted(functions),
           f"the SavedModel has signatures {result['signatures']}, expected {sorted(functions)}")
    for name in functions:
        _check(result["input_names"][name] == sorted(inputs[name]),
               f"signature {name!r} takes {result['input_names'][name]} reloaded, {sorted(inputs[name])} in-process")
        reloaded = result["outputs"][name]
        _check(sorted(reloaded) == sorted(expected[name]),
               f"signature {name!r} returns {sorted(reloaded)} reloaded, {sorted(expected[name])} in-process")
        for key, value in expected[name].items():
            got = reloaded[key]
            _check(got.shape == value.shape, f"{name}/{key}: shape {got.shape} reloaded, {value.shape} in-process")
            if value.dtype.kind in "SUO":
                np.testing.assert_array_equal(got, value, err_msg=f"{name}/{key}")
            else:
                np.testing.assert_allclose(got, value, atol=atol, rtol=atol, err_msg=f"{name}/{key}")
    return {"path": path, "signatures": sorted(functions), "expected": expected, "reloaded": result["outputs"]}


# -- helpers -------------------------------------------------------------------


def _check(condition, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _numpy(structure):
    return tf.nest.map_structure(lambda tensor: tensor.numpy(), structure)


def _check_equal(first, second, what: str) -> None:
    try:
        tf.nest.assert_same_structure(first, second)
    except (ValueError, TypeError) as error:
        raise AssertionError(f"{what}: outputs differ in structure: {error}") from None
    for a, b in zip(tf.nest.flatten(first), tf.nest.flatten(second)):
        _check(np.array_equal(np.asarray(a), np.asarray(b)), f"{what}: outputs differ")


def _check_structure_keys(name, batch, sequence_length, spec) -> None:
    for key in ("token_ids", "padding_mask"):
        _check(key in batch and batch[key].dtype == tf.int32 and batch[key].shape[1] == sequence_length,
               f"{name}.structure must give int32 {key!r} of shape [{sequence_length}]")
    for key in set(batch) - {"token_ids", "padding_mask", "segment_ids", *spec.input_names}:
        _check(key.startswith(name), f"{name}.structure made key {key!r}; name the keys it adds {name}_...")


def _check_padding_has_no_weight(instance, spec, batch, seed) -> None:
    """The last row becomes padding only; with per-token weights, no padding position may weigh."""
    name = instance.name
    keep = tf.range(tf.shape(batch["token_ids"])[0]) < tf.shape(batch["token_ids"])[0] - 1
    padded = {}
    for key, tensor in batch.items():
        keep_here = tf.reshape(keep, [-1] + [1] * (tensor.shape.rank - 1))
        filler = spec.special_token_ids["pad"] if key == "token_ids" else 0
        padded[key] = tf.where(keep_here, tensor, tf.cast(filler, tensor.dtype))
    _, _, weights = instance.prepare(padded, spec, seed)
    _check(not np.any(weights.numpy()[-1]), f"{name}: a row of padding only has sample weights {weights[-1]}")
    if weights.shape[:2] == batch["padding_mask"].shape:
        padding = batch["padding_mask"].numpy() == 0
        _check(not np.any(weights.numpy()[padding]), f"{name}: padding positions have non-zero sample weight")


def _check_incompatible_models_refused(instance) -> None:
    for family_name in registry.model_names():
        family = registry.model_entry(family_name).value
        missing = set(instance.requires) - set(family.capabilities)
        if not missing:
            continue
        try:
            build(family_name, objective=instance)
        except IncompatibleError as error:
            _check(any(capability in str(error) for capability in missing),
                   f"{instance.name} on {family_name}: the error does not name what is missing: {error}")
        else:
            raise AssertionError(f"{instance.name} needs {sorted(missing)}, which {family_name} lacks, "
                                 "yet zoo.build accepted the pair")


def _default_serving_texts(model) -> list:
    texts = ["The quick brown fox jumps over the lazy dog.", "short"]
    mask = model.spec.special_token_ids.get("mask")
    if mask is not None:
        token = model.tokenizer.id_to_token(mask)
        texts.insert(0, f"The {token} sat on the {token}.")
    return texts


def _signature_inputs(model, name, signature, texts) -> dict:
    if all(spec.dtype == tf.string for spec in signature.values()):
        return {key: np.array(texts[i:] + texts[:i], dtype=object) for i, key in enumerate(sorted(signature))}
    features = model.preprocessor.inference_features(tf.constant(texts))
    missing = sorted(set(signature) - set(features))
    _check(not missing, f"signature {name!r} takes {missing}, which are neither text nor model inputs; "
                        "run_export_test cannot make them")
    return {key: features[key].numpy() for key in signature}
