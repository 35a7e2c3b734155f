"""SavedModels that take raw text, reloaded with only tensorflow and tensorflow_text."""

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.export import serving_functions
from zoo.testing import EDGE_TEXTS, run_export_test

PAIRS = [("bert", "mlm"), ("gpt", "clm"), ("lstm_lm", "clm")]


def texts_for(model):
    mask = model.tokenizer.id_to_token(model.spec.special_token_ids["mask"])
    return [f"The {mask} sat on the {mask}.", "short"]


@pytest.mark.slow
@pytest.mark.parametrize("model_name, objective", PAIRS)
def test_reloaded_in_a_fresh_process_gives_the_same_outputs(model_name, objective, tmp_path):
    tf.keras.utils.set_random_seed(0)
    model = zoo.build(model_name, objective=objective, sequence_length=32, num_layers=1)
    model.fit(zoo.text.corpus.default_corpus()[:64], batch_size=8, epochs=1, verbose=0)
    # Every signature, token_ids included, on texts with masks, empty, non-ASCII and too long, to 1e-5.
    result = run_export_test(model, tmp_path, texts=texts_for(model), max_new_tokens=4)
    assert result["signatures"] == sorted([objective, "encode", "serving_default", "token_ids"])
    encoded = result["reloaded"]["encode"]
    texts = texts_for(model) + list(EDGE_TEXTS)
    assert encoded["sequence_output"].shape == (len(texts), 32, model.spec.hidden_dim)
    # The empty text is [CLS] [SEP] for bert, the start token alone for causal models.
    np.testing.assert_array_equal(encoded["padding_mask"][texts.index("")].sum(), 2 if objective == "mlm" else 1)


def test_token_ids_signature_equals_predict(tmp_path):
    # float32: in bfloat16, Keras's predict and the signature may round differently (same graph, other kernels).
    model = zoo.build("bert", objective="mlm", sequence_length=16, num_layers=1, precision="float32")
    texts = ["The [MASK] sat.", "Nothing masked here at all"]
    inputs = next(iter(model.preprocessor.inference_dataset(texts, batch_size=2)))
    loaded = tf.saved_model.load(str(zoo.export(model, tmp_path / "sm")))
    outputs = loaded.signatures["token_ids"](**inputs)
    np.testing.assert_allclose(outputs["mlm"], model.predict(texts, verbose=0)["mlm"], atol=1e-5)
    stored = tf.train.list_variables(str(tmp_path / "sm" / "variables" / "variables"))
    stored = {name: shape for name, shape in stored if name.endswith("VARIABLE_VALUE")}  # not tables or the graph
    values = sum(int(np.prod(shape)) for shape in stored.values())
    assert values == sum(int(np.prod(v.shape)) for v in model.variables)  # each variable once
    assert len(loaded.variables) == len(model.variables)


def test_fill_mask_reports_where_the_masks_are():
    model = zoo.build("bert", objective="mlm", sequence_length=16, num_layers=1)
    function, _ = serving_functions(model, top_k=3)["serving_default"]
    out = function({"text": tf.constant(["a [MASK] b [MASK]", "none"])})
    np.testing.assert_array_equal(out["is_mask"][:, :3], [[1, 1, 0], [0, 0, 0]])
    assert out["tokens"].shape == (2, model.objectives[0].max_predictions_for(16), 3)
    scores = out["scores"].numpy()
    assert np.all(np.diff(scores, axis=-1) <= 0) and np.all((scores > 0) & (scores <= 1))


def test_saved_model_cli_lists_the_string_signatures(tmp_path):
    model = zoo.build("gpt", objective="clm", sequence_length=16, num_layers=1)
    with pytest.raises(zoo.ZooError, match="max_new_tokens=16 leaves no room"):
        zoo.export(model, tmp_path / "sm")
    assert not (tmp_path / "sm").exists()
    path = zoo.export(model, tmp_path / "sm", max_new_tokens=8)
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    result = subprocess.run([str(cli), "show", "--dir", str(path), "--all"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("serving_default", "encode", "clm"):
        block = result.stdout.split(f"signature_def['{name}']:")[1].split("signature_def[")[0]
        assert "inputs['text'] tensor_info:\n        dtype: DT_STRING" in block
    assert "README.md" in {p.name for p in path.iterdir()}
    assert (path / "assets.extra" / "config.json").exists()


@pytest.fixture(scope="module")
def small_gpt():
    return zoo.build("gpt", objective="clm", sequence_length=16, num_layers=1)


def test_an_export_replaces_an_earlier_export_only(tmp_path, small_gpt):
    model = small_gpt
    (tmp_path / "model.keras").write_text("a saved model")
    (tmp_path / "run" / "checkpoints" / "step-00000002").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "step-00000002" / "state.json").write_text("{}")
    (tmp_path / "run" / "recipe.toml").write_text("name = 'run'\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(zoo.ZooError, match="is a file, not an export folder"):
        zoo.export(model, tmp_path / "model.keras", max_new_tokens=4)
    for folder in (tmp_path / "run", tmp_path / "run" / "checkpoints"):
        with pytest.raises(zoo.ZooError, match="holds files that are not a zoo export"):
            zoo.export(model, folder, max_new_tokens=4)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("options, message", [
    ({"top_k": 0}, "top_k must be an integer from 1 to the vocabulary size"),
    ({"top_k": 10**6}, r"vocabulary size \(\d+\), got 1000000"),
    ({"top_k": "5"}, "top_k must be an integer"),
    ({"max_new_tokens": -1}, "max_new_tokens must be an integer >= 0, got -1"),
])
def test_endpoint_options_no_export_could_serve_are_refused(options, message, tmp_path, small_gpt):
    with pytest.raises(zoo.ZooError, match=message):
        zoo.export(small_gpt, tmp_path / "sm", **{"max_new_tokens": 4, **options})
    assert not (tmp_path / "sm").exists()


@pytest.mark.slow
def test_an_export_killed_midway_leaves_the_previous_one_intact(tmp_path):
    path = tmp_path / "sm"
    zoo.export(zoo.build("gpt", objective="clm", sequence_length=16, num_layers=1), path, max_new_tokens=4)
    before = {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    marker = tmp_path / "writing"
    script = textwrap.dedent(f"""
        import pathlib, time, zoo
        from zoo.text import tokenizer
        def stall(self, directory):  # the export is half written when this runs
            pathlib.Path({str(marker)!r}).touch()
            time.sleep(600)
        tokenizer.Tokenizer.save = stall
        zoo.export(zoo.build("gpt", objective="clm", sequence_length=16, num_layers=2), {str(path)!r},
                   max_new_tokens=4)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not marker.exists():
            assert process.poll() is None and time.time() < deadline, "the export never started writing"
            time.sleep(0.2)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    after = {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    assert after == before
    loaded = tf.saved_model.load(str(path))
    assert "serving_default" in loaded.signatures
