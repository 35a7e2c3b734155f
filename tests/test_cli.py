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
