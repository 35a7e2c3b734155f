"""The runner: every built-in recipe end to end, resume after SIGKILL, fine-tuning from a run or a preset."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.cli import main
from zoo.recipe import builtin_recipes, load_recipe
from zoo.train import export_run, load_run, train

#: A few steps of a tiny model: what the smoke tests and the resume test train.
SMOKE = [
    "model.num_layers=1", "model.hidden_dim=32", "model.sequence_length=32", "training.batch_size=4",
    "training.steps=3", "training.checkpoint_every=2", "training.log_every=1", "training.warmup_steps=1",
]
#: Per-family overrides that keep the smoke models small.
SMALL = {"bert": ["model.intermediate_dim=64"], "gpt": ["model.intermediate_dim=64"],
         "lstm_lm": ["model.embedding_dim=32"], "autoencoder": ["model.embedding_dim=32", "model.bottleneck_dim=16"]}


def smoke(name, *extra):
    recipe = load_recipe(name)
    return SMOKE + SMALL.get(recipe.model.name, []) + list(extra)


def _requires_objectives(name):
    import tomllib

    wanted = set(tomllib.loads(builtin_recipes()[name].read_text(encoding="utf-8"))["objectives"])
    missing = sorted(wanted - set(zoo.objectives()))
    return pytest.mark.skipif(bool(missing), reason=f"objective(s) {missing} not registered yet")


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=_requires_objectives(name))
    for name in ("bert-mlm", "gpt-clm", "lstm-clm", "bert-mlm-nsp", "autoencoder-denoising", "bert-pseudo-label")
])
def test_each_built_in_recipe_trains_checkpoints_and_exports(name, tmp_path):
    run = tmp_path / name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = train(name, out=run, overrides=smoke(name), verbose=0)
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []  # a clean console
    assert metrics["steps"] == 3 and metrics["resumed_from"] == 0
    assert [record["step"] for record in metrics["history"]] == [1, 2, 3]
    assert all(record["loss"] > 0 for record in metrics["history"])
    assert metrics["validation"]["loss"] > 0
    assert json.loads((run / "metrics.json").read_text()) == metrics
    assert load_recipe(run / "recipe.toml").training.steps == 3
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002", "step-00000003"]
    assert (run / "tokenizer" / "tokenizer.json").is_file()
    assert list((run / "logs" / "train").glob("events.out.tfevents.*"))
    assert (run / "saved_model" / "saved_model.pb").is_file()
    served = tf.saved_model.load(str(run / "saved_model"))
    outputs = served.signatures["encode"](text=tf.constant(["A short text."]))
    assert outputs["pooled_output"].shape[0] == 1


def test_rerunning_a_run_resumes_it_exactly_and_a_finished_one_trains_nothing(tmp_path):
    overrides = smoke("gpt-clm", "export.enabled=false")
    first = train("gpt-clm", out=tmp_path / "run", overrides=overrides, verbose=0)
    again = train("gpt-clm", out=tmp_path / "run", overrides=overrides, verbose=0)
    assert again["resumed_from"] == 3 and again["steps"] == 3 and again["history"] == []
    assert again["weights_digest"] == first["weights_digest"]

    # As if killed after step 2's checkpoint: step 3 is trained again, with the same batch and
    # the same dropout masks (the dropout layers' generator states are in the checkpoint).
    shutil.copytree(tmp_path / "run", tmp_path / "killed")
    shutil.rmtree(tmp_path / "killed" / "checkpoints" / "step-00000003")
    (tmp_path / "killed" / "metrics.json").unlink()
    resumed = train("gpt-clm", out=tmp_path / "killed", overrides=overrides, verbose=0)
    assert resumed["resumed_from"] == 2 and [record["step"] for record in resumed["history"]] == [3]
    assert resumed["weights_digest"] == first["weights_digest"]


def test_zoo_export_writes_the_runs_trained_model(tmp_path):
    run = tmp_path / "run"
    metrics = train("gpt-clm", out=run, overrides=smoke("gpt-clm", "export.enabled=false"), verbose=0)
    assert not (run / "saved_model").exists()
    assert main(["export", str(run), "--out", str(tmp_path / "exported")]) == 0
    served = tf.saved_model.load(str(tmp_path / "exported"))
    assert set(served.signatures) >= {"serving_default", "clm", "encode", "token_ids"}
    task = load_run(run)
    inputs = task.preprocessor.inference_features(tf.constant(["def f(x): return x"]))
    expected = task(inputs, training=False)["clm"]
    assert float(tf.reduce_max(tf.abs(served.signatures["token_ids"](**inputs)["clm"] - expected))) < 1e-4
    assert export_run(run) == run / "saved_model" and metrics["steps"] == 3


def test_a_folder_that_is_not_a_run_is_refused_and_left_as_it_was(tmp_path, capsys):
    folder = tmp_path / "mine"
    (folder / "saved_model").mkdir(parents=True)
    (folder / "saved_model" / "notes.txt").write_text("mine")
    (folder / "metrics.json").write_text("{}")
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert main(["train", "gpt-clm", "--out", str(folder), *[f"--set={o}" for o in smoke("gpt-clm")]]) == 2
    assert "holds files but no zoo run (no recipe.toml)" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_a_damaged_checkpoint_names_the_step_to_go_back_to(tmp_path):
    from zoo.checkpoints import RunCheckpoints, restore_model

    task = zoo.build("gpt", objective="clm", sequence_length=16, num_layers=1)
    task.optimizer.build(task.trainable_variables)
    checkpoints = RunCheckpoints(tmp_path, task, keep=3)
    checkpoints.save(step=1, data_position=1)
    checkpoints.save(step=2, data_position=2)
    for data in (tmp_path / "step-00000002").glob("ckpt.data-*"):
        data.write_bytes(data.read_bytes()[:10])  # a copy cut short
    damaged = r"step-00000002 cannot be read \(.*\); delete .*step-00000002 to go on from the checkpoint of step 1"
    for read in (checkpoints.restore, lambda: restore_model(tmp_path, task)):
        with pytest.raises(zoo.ZooError, match=damaged):
            read()
    shutil.rmtree(tmp_path / "step-00000002")
    assert checkpoints.restore() == {"step": 1, "data_position": 1}


def _first_step_loss(out, *extra):
    metrics = train("bert-mlm", out=out, verbose=0, overrides=smoke(
        "bert-mlm", "training.steps=1", "training.learning_rate=1e-6", "model.dropout=0.0",
        "export.enabled=false", *extra))
    return metrics["history"][0]["loss"]


def test_fine_tuning_starts_from_a_pretrained_run_and_from_a_keras_hub_preset(tmp_path):
    pretrained = tmp_path / "pretrained"
    train("bert-mlm", out=pretrained, verbose=0, overrides=smoke(
        "bert-mlm", "training.steps=30", "training.learning_rate=5e-3", "model.dropout=0.0",
        "training.checkpoint_every=30", "export.enabled=false"))
    fresh = _first_step_loss(tmp_path / "fresh")
    from_run = _first_step_loss(tmp_path / "from-run", f"init_from={pretrained}")
    assert from_run < fresh - 0.5, (from_run, fresh)

    preset = tmp_path / "preset"
    backbone = load_run(pretrained).backbone
    backbone.save_to_preset(str(preset))
    load_run(pretrained).tokenizer.save(preset / "tokenizer")
    _first_step_loss(tmp_path / "from-preset", f"init_from={preset}")
    started = load_run(tmp_path / "from-preset").backbone.get_weights()  # after one step at learning rate 1e-6
    assert all(np.allclose(a, b, atol=1e-4) for a, b in zip(started, backbone.get_weights()))
    untrained = load_run(tmp_path / "fresh").backbone.get_weights()
    assert not all(np.allclose(a, b, atol=1e-4) for a, b in zip(untrained, backbone.get_weights()))


def _logged_steps(run):
    """The steps each process logged, one list per TensorBoard event file, oldest file first."""
    files = sorted((run / "logs" / "train").glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    steps = []
    for path in files:
        logged = set()
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            if any(value.tag == "loss" for value in event.summary.value):
                logged.add(event.step)
        steps.append(sorted(logged))
    return steps


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_from_its_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    total, every = 40, 5
    command = [sys.executable, "-m", "zoo", "train", "gpt-clm", "--out", str(run),
               *[f"--set={item}" for item in smoke("gpt-clm", f"training.steps={total}",
                                                    f"training.checkpoint_every={every}", "export.enabled=false")]]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list((run / "checkpoints").glob("step-*/state.json")) and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.05)
    time.sleep(0.7)  # kill somewhere after the first checkpoint, mid-step or mid-write
    assert process.poll() is None, "the run finished before it could be killed; raise training.steps"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    first_run_steps = _logged_steps(run)[0]

    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    resumed = metrics["resumed_from"]
    assert metrics["steps"] == total
    assert resumed > 0 and resumed % every == 0
    assert max(first_run_steps) - resumed <= every  # at most one checkpoint interval trained twice
    assert _logged_steps(run)[1] == list(range(resumed + 1, total + 1))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [f"step-{total - every:08d}", f"step-{total:08d}"]
