"""Strategies by name; mirrored over two logical CPUs, and two workers on 127.0.0.1, match default."""

import json
import os
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

from zoo.distribute import get_strategy, is_chief, worker_label
from zoo.errors import ConfigError, UnknownNameError
from zoo.train import train

TINY = [
    "model.num_layers=1", "model.hidden_dim=32", "model.intermediate_dim=64", "model.sequence_length=32",
    "model.dropout=0.0", "training.batch_size=8", "training.log_every=1", "training.warmup_steps=0",
    "training.decay=constant", "training.learning_rate=3e-3", "export.enabled=false",
]


def test_strategies_by_name():
    assert get_strategy("default").num_replicas_in_sync == 1
    assert get_strategy("one_device").num_replicas_in_sync == 1
    mirrored = get_strategy("mirrored")
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == 2  # the two logical CPUs of tests/conftest.py
    assert get_strategy("auto").num_replicas_in_sync == 1  # no TPU, fewer than two GPUs
    assert is_chief(mirrored) and worker_label(mirrored) == "local"
    with pytest.raises(UnknownNameError, match="unknown strategy 'mirored'; did you mean 'mirrored'"):
        get_strategy("mirored")


def test_multi_worker_needs_a_well_formed_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="multi_worker needs TF_CONFIG"):
        get_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(ConfigError, match="TF_CONFIG is malformed"):
        get_strategy("multi_worker")


@pytest.fixture(scope="module")
def default_losses(tmp_path_factory):
    """The losses of 4 steps of TINY under the default strategy (constant rate: a shorter run's are a prefix)."""
    metrics = train("gpt-clm", out=tmp_path_factory.mktemp("default"), strategy="default", verbose=0,
                    overrides=TINY + ["training.steps=4"])
    assert metrics["replicas"] == 1
    return [record["loss"] for record in metrics["history"]]


def test_mirrored_over_two_cpus_gives_the_losses_of_default(tmp_path, default_losses):
    metrics = train("gpt-clm", out=tmp_path, strategy="mirrored", verbose=0, overrides=TINY + ["training.steps=4"])
    assert metrics["replicas"] == 2
    assert len(default_losses) == 4
    assert default_losses[-1] < default_losses[0]  # it trains
    assert [record["loss"] for record in metrics["history"]] == pytest.approx(default_losses, rel=1e-4)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


_WORKER = """
import json, sys
from zoo.train import train
metrics = train("gpt-clm", out=sys.argv[1], strategy="multi_worker", verbose=0, overrides=json.loads(sys.argv[2]))
print("RESULT", json.dumps({key: metrics[key] for key in ("steps", "replicas", "weights_digest", "history")}))
"""


@pytest.mark.slow
def test_two_workers_on_localhost_train_to_the_same_weights(tmp_path, default_losses):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    run = tmp_path / "run"
    processes = []
    for index in range(2):
        environment = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(run), json.dumps(TINY + ["training.steps=3"])],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.split("RESULT", 1)[1]))
    assert results[0] == results[1]
    assert results[0]["steps"] == 3 and results[0]["replicas"] == 2
    metrics = json.loads((run / "metrics.json").read_text())  # written by the chief (worker 0) alone
    assert metrics["weights_digest"] == results[0]["weights_digest"]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "logs", "metrics.json", "recipe.toml", "tokenizer"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000003"]
    # Each global batch of 8 is split between the workers: together they train what one process trains.
    assert [record["loss"] for record in results[0]["history"]] == pytest.approx(default_losses[:3], rel=1e-4)
