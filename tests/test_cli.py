"""The zoo command."""

import subprocess
import sys


def test_zoo_list_shows_models_and_objectives_with_their_origin():
    result = subprocess.run([sys.executable, "-m", "zoo", "list"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "models:"
    for name in ("bert", "gpt", "lstm_lm", "autoencoder", "mlm", "clm"):
        assert any(line.split()[0] == name and line.endswith("built-in") for line in lines[1:] if line.startswith("  "))


def test_usage_errors_exit_with_status_2():
    result = subprocess.run([sys.executable, "-m", "zoo", "lst"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "invalid choice: 'lst'" in result.stderr


def test_zoo_list_shows_the_built_in_recipes(capsys):
    from zoo.cli import main

    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    recipes = lines[lines.index("recipes:") + 1:]
    names = {line.split()[0] for line in recipes if line.startswith("  ")}
    assert {"bert-mlm", "gpt-clm", "lstm-clm", "bert-mlm-nsp", "autoencoder-denoising", "bert-pseudo-label"} <= names
    assert any(line.split()[:3] == ["bert-mlm", "bert", "+"] and line.endswith("built-in") for line in recipes)


def _snapshot(folder):
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _bad_inputs(tmp_path):
    (tmp_path / "empty.txt").write_text("\n   \n\n")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me.\n".encode("latin-1"))
    (tmp_path / "typo.toml").write_text('[model]\nname = "gpt"\n[objectives.clm]\n[training]\nstepz = 3\n')
    same = ["--set", "model.num_layers=1"]  # as the existing run
    return [
        (["gpt-clm", *same, "--set", "training.step=3"], "unknown key 'training.step'; did you mean 'steps'?"),
        (["gpt-clm", *same, "--set", "training.steps=many"], "training.steps must be an integer, got a string 'many'"),
        (["gpt-clm", *same, "--data", str(tmp_path / "nothing" / "*.txt")], "no file matches"),
        (["gpt-clm", *same, "--data", str(tmp_path / "empty.txt")], "the files hold only whitespace"),
        (["gpt-clm", *same, "--data", str(tmp_path / "latin1.txt")], "is not valid UTF-8 (byte 0xe9 at offset 3)"),
        ([str(tmp_path / "typo.toml"), *same], "unknown key 'training.stepz'; did you mean 'steps'?"),
        (["gpt-clm", "--set", "model.num_layers=3"], "holds a run of another recipe (model.num_layers was 1, now 3)"),
        (["gpt-clm", *same, "--strategy", "mirroredd"], "unknown strategy 'mirroredd'; did you mean 'mirrored'?"),
        (["gpt-clm", *same, "--set", "init_from=" + str(tmp_path)], "is neither a zoo run"),
    ]


def test_bad_recipes_and_data_exit_2_with_one_line_and_leave_the_run_untouched(tmp_path, capsys):
    from zoo.cli import main
    from zoo.recipe import load_recipe

    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.toml").write_text(load_recipe("gpt-clm", ["model.num_layers=1"]).to_toml())
    (run / "metrics.json").write_text('{"steps": 1}\n')
    before = _snapshot(run)
    for arguments, message in _bad_inputs(tmp_path):
        assert main(["train", *arguments, "--out", str(run)]) == 2
        error = capsys.readouterr().err
        assert len(error.strip().splitlines()) == 1, error
        assert error.startswith("zoo: error: ") and message in error, (arguments, error)
        assert _snapshot(run) == before


def _tensorflow_log(line):
    """TensorFlow's C++ start-up logging, printed on import whatever zoo does."""
    return line.startswith(("WARNING: All log messages before absl", "I0000 ", "W0000 ", "E0000 "))


def test_the_command_exits_2_on_a_bad_recipe(tmp_path):
    result = subprocess.run([sys.executable, "-m", "zoo", "train", "bert-mlm", "--set", "training.batch_size=-1",
                             "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if not _tensorflow_log(line)]
    assert lines == ["zoo: error: bert-mlm: training.batch_size must be a positive integer, got -1"]
    assert not (tmp_path / "run").exists()


def test_zoo_export_of_a_folder_that_is_not_a_run_is_an_error(tmp_path, capsys):
    from zoo.cli import main

    assert main(["export", str(tmp_path)]) == 2
    assert "is not a zoo run (no recipe.toml)" in capsys.readouterr().err
