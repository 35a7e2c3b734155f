"""The benchmark harness (benchmarks/): a --quick smoke run and its results file. No timing assertions."""

import doctest
import json
import math
import pathlib
import statistics
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import ceiling, corpora, flops, hardware, run, timing  # noqa: E402

POSITIVE = ("first_step_s", "steps_per_s", "sequences_per_s", "useful_tokens_per_s", "flops_per_s", "mfu_float32",
            "mfu_bfloat16", "pipeline_sequences_per_s", "pipeline_over_consumption", "parameters")


@pytest.mark.parametrize("module", [ceiling, corpora, flops, hardware, timing], ids=lambda module: module.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_long_documents_hold_the_same_text_in_order():
    short = corpora.docstrings(limit=300)[0]
    long = corpora.join_documents(short, min_words=200)
    assert "\n\n".join(long) == "\n\n".join(short)
    assert all(len(document.split()) >= 200 for document in long[:-1])
    assert corpora.median_words(short) < 30 < corpora.median_words(long)


def test_masked_lm_flops_count_predictions_only():
    dims = {"num_layers": 2, "hidden_dim": 8, "intermediate_dim": 32, "vocabulary_size": 100, "sequence_length": 16}
    body = flops.transformer_flops(10, 0, head="mlm", **dims)
    assert flops.transformer_flops(10, 3, head="mlm", **dims) == body + 3 * 6 * (8 * 8 + 8 * 100)
    assert flops.transformer_flops(10, 3, head="clm", **dims) == body + 10 * 6 * 8 * 100


@pytest.mark.parametrize("head", ["mlm", "clm"])
def test_matmul_ceiling_times_exactly_the_model_flops(head):
    dims = {"num_layers": 3, "hidden_dim": 64, "intermediate_dim": 256, "vocabulary_size": 1000, "sequence_length": 32}
    products = ceiling.transformer_products(tokens=4 * 32, predictions=19, head=head, num_heads=4, **dims)
    timed_flops = sum(6 * count * math.prod(shape) for _, count, shape in products)
    assert timed_flops == flops.transformer_flops(4 * 32, 19, head=head, **dims)


def test_unknown_model_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--quick", "--models", "brt"])
    assert exit_info.value.code == 2
    assert "expected some of bert_mlm,gpt_clm,lstm_clm" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_run_writes_every_row_with_positive_figures(tmp_path):
    out = tmp_path / "results.json"
    other_device = {"device": {"kind": "gpu"}, "rows": []}
    out.write_text(json.dumps({"format": run.RESULTS_FORMAT, "runs": {"gpu": other_device}}))
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--corpora", "long", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = json.loads(out.read_text())
    assert results["runs"]["gpu"] == other_device  # runs on other devices are kept
    result = results["runs"][hardware.device_kind()]
    device = "GPU:0" if result["device"]["gpus"] else "CPU:0"

    expected = ["bert_mlm/long", "gpt_clm/long", "lstm_clm/long"]
    if result["default_precision"] != "float32":
        expected += ["bert_mlm/long/float32", "gpt_clm/long/float32"]
    assert [row["name"] for row in result["rows"]] == expected
    assert result["device"]["cpu_allocator"] == "caching (BFC)"  # zoo's default, for both sides
    for row in result["rows"]:
        sides = [row["zoo"]] + ([row["keras_hub"]] if row["model"] != "lstm_clm" else [])
        assert (row["keras_hub"] is None) == (row["model"] == "lstm_clm")
        for side in sides:
            for key in POSITIVE:
                assert side[key] > 0 and math.isfinite(side[key]), (row["name"], side["side"], key)
            assert len(side["window_s"]) == result["settings"]["windows"]
            assert 0 < side["useful_token_fraction"] <= 1
            assert side["peak_memory_mb"] > 0
            assert side["peak_memory_source"] == f"tf.config.experimental.get_memory_info({device})['peak']"
            peak = result["peaks"]["float32"]["flops_per_s"]
            assert side["mfu_float32"] == pytest.approx(side["flops_per_s"] / peak)
            assert side["mfu_float32_adjacent"] == pytest.approx(side["flops_per_s"] / side["peak_sample"]["float32"])
        assert row["zoo"]["useful_token_fraction"] > 0.9  # packed blocks hold almost no padding
        assert ("matmul_ceiling" in row["zoo"]) == (row["model"] != "lstm_clm")
        if row["model"] != "lstm_clm":
            assert 0 < row["zoo"]["matmul_ceiling"]["mfu"] < math.inf
            for product in row["zoo"]["matmul_ceiling"]["products"]:  # each product on its faster kernel
                assert 0 < product["seconds"] <= min(product["kernel_seconds"].values())
            assert row["zoo"]["matmul_ceiling"]["dtype"] == ("float32" if row["zoo"]["precision"] == "float32"
                                                              else "bfloat16")
        if row["keras_hub"] is not None:
            assert all(value > 0 and math.isfinite(value) for value in row["ratio"].values())
        else:
            assert row["ratio"] is None
        assert row["name"] in completed.stdout

    sides = sum(1 + (row["keras_hub"] is not None) for row in result["rows"] if not row["name"].endswith("/float32"))
    sides += sum(1 for row in result["rows"] if row["name"].endswith("/float32"))  # zoo float32; hub's is shared
    for dtype in ("float32", "bfloat16"):
        samples = result["peaks"][dtype]["samples"]
        assert len(samples) == 1 + sides and all(sample > 0 for sample in samples)
        assert result["peaks"][dtype]["flops_per_s"] == pytest.approx(statistics.median(samples))
        size = result["peaks"][dtype]["size"]
        assert result["peaks"][dtype]["median_s"] == pytest.approx(2 * size**3 / statistics.median(samples))
        # each sample is the faster of TensorFlow's matmul op and XLA's dot
        assert len(result["peaks"][dtype]["sample_kernels"]) == len(samples)
        first = result["peaks"][dtype]
        assert first["first_flops_per_s"] == max(first["kernel_flops_per_s"].values())
        assert first["kernel"] == max(first["kernel_flops_per_s"], key=first["kernel_flops_per_s"].get)
    tokenizer = result["tokenizer"]
    assert tokenizer["zoo_s"] > 0 and tokenizer["keras_hub_s"] > 0 and math.isfinite(tokenizer["speedup"])
    quality = result["quality"]
    if result["default_precision"] == "float32":
        assert quality is None
    else:
        assert 0 <= quality["accuracy"] <= 1 and 0 <= quality["float32_accuracy"] <= 1
        assert quality["predictions"] > 0
    assert result["device"]["cpu_model"] and result["versions"]["keras-hub"]
    assert result["tied_projection"] == []  # quick models' heads are under a GFLOP: not timed
    choice = {"rows": 4096, "hidden_dim": 256, "vocabulary_size": 8192, "dtype": "float32", "kernel": "xla",
              "seconds": {"matmul": 0.2177, "xla": 0.1264}}
    assert ("tied projection [4096, 256] x [8192, 256]^T float32: xla (matmul 217.7 ms, xla 126.4 ms)"
            in run.format_table({**result, "tied_projection": [choice]}).splitlines())
    assert result["compiled_attention"] == []  # quick models' attention is under a GFLOP: not timed
    choice = {"query_shape": [32, 4, 128, 64], "key_positions": 128, "dtype": "float32", "mask_shape": [32, 1, 1, 128],
              "rate": 0.1, "kernel": "xla", "seconds": {"ops": 0.0301, "xla": 0.0232}}
    assert ("attention [32, 4, 128, 64] x 128 keys float32, mask [32, 1, 1, 128]: xla (ops 30.1 ms, xla 23.2 ms)"
            in run.format_table({**result, "compiled_attention": [choice]}).splitlines())
