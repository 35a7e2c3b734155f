"""The zoo-sop distribution of plugins/, pip-installed into a folder of its own and used from fresh processes.

The plugin is installed with ``pip install --target``, never into the test
environment, so this process and the other tests never see it: only the
subprocesses given that folder on ``PYTHONPATH`` do.
"""

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

import zoo

PLUGIN = pathlib.Path(__file__).resolve().parents[1] / "plugins" / "zoo-sop"

PROBE = textwrap.dedent("""
    import contextlib, io, json
    import zoo, zoo.cli
    result = {"objectives": zoo.objectives()}
    try:
        zoo.build("bert", objective="sop", num_layers=1)
        result["built"] = True
    except zoo.ZooError as error:
        result["built"] = f"{type(error).__name__}: {error}"
    listing = io.StringIO()
    with contextlib.redirect_stdout(listing):
        zoo.cli.main(["list"])
    result["list"] = listing.getvalue()
    if "sop" in result["objectives"]:
        import zoo_sop
        result["module"] = zoo_sop.__file__
    print(json.dumps(result))
""")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder holding the installed plugin (built from a copy, so the source tree stays clean)."""
    root = tmp_path_factory.mktemp("zoo-sop")
    source = root / "source"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(root / "site")]
    if importlib.util.find_spec("setuptools") and importlib.util.find_spec("wheel"):
        command += ["--no-build-isolation", "--no-index"]  # hermetic: the build needs nothing from an index
    started = time.monotonic()
    result = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"pip install of zoo-sop took {time.monotonic() - started:.1f}s")
    return root / "site"


def run_python(site, args, cwd=None, **env):
    """Run Python with the plugin's folder on the path (and autoload on unless `env` says otherwise)."""
    environment = {key: value for key, value in os.environ.items() if key != "ZOO_DISABLE_PLUGIN_AUTOLOAD"}
    environment.update(PYTHONPATH=str(site), TF_CPP_MIN_LOG_LEVEL="2", **env)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=1500, env=environment,
                          cwd=cwd)


def test_installed_plugin_is_listed_with_its_distribution_and_autoload_can_hide_it(site):
    result = run_python(site, ["-c", PROBE])
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.splitlines()[-1])
    assert "sop" in found["objectives"] and {"mlm", "clm"} <= set(found["objectives"])
    assert found["built"] is True
    assert pathlib.Path(found["module"]).parent == site
    (line,) = [line for line in found["list"].splitlines() if line.split()[:1] == ["sop"]]
    assert line.split() == ["sop", "needs", "pooled,", "segments", "zoo-sop", "0.1.0", "(plugin", "'sop')"]
    assert "built-in" in next(line for line in found["list"].splitlines() if line.split()[:1] == ["mlm"])

    hidden = run_python(site, ["-c", PROBE], ZOO_DISABLE_PLUGIN_AUTOLOAD="1")
    assert hidden.returncode == 0, hidden.stderr[-3000:]
    found = json.loads(hidden.stdout.splitlines()[-1])
    assert "sop" not in found["objectives"] and "mlm" in found["objectives"]
    assert found["built"].startswith("UnknownNameError: unknown objective 'sop'")
    assert "sop" not in found["list"]
    assert "sop" not in zoo.objectives(), "the plugin leaked into the test process"


@pytest.mark.slow
def test_the_plugins_own_tests_pass_against_the_installed_distribution(site, tmp_path):
    # Pairing statistics, training with mlm (also under MirroredStrategy), export and a fresh-process reload,
    # and the doctests of the installed module.
    result = run_python(site, ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(PLUGIN / "pyproject.toml"),
                               "--rootdir", str(PLUGIN), "--doctest-modules", str(site / "zoo_sop.py"),
                               str(PLUGIN / "tests")], cwd=tmp_path)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary
