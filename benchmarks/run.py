"""Benchmark zoo against keras-hub in one process run: ``python -m benchmarks.run [--quick] [--out PATH]``.

For each model (BERT + MLM, GPT + CLM, and zoo's LSTM LM alone) and each
corpus (short and long documents, :mod:`benchmarks.corpora`), trains zoo's
task and then the keras-hub task on the same vocabulary, dimensions,
sequence length and global batch, and measures steps/s, useful tokens/s,
MFU, peak memory and the input pipeline alone; then compares tokenizer
training with ``keras_hub.tokenizers.compute_word_piece_vocabulary``.
Prints a table and writes the run into the JSON results file under the
device kind it ran on (``cpu``, ``gpu``, ``tpu``), keeping the other kinds'
runs. ``benchmarks/README.md`` explains every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import math
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):  # run as a script, `python benchmarks/run.py`: import from the repository root
    sys.path[0] = str(pathlib.Path(__file__).resolve().parent.parent)

import keras  # noqa: E402
import keras_hub  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import ceiling, corpora, flops, hardware, models, timing  # noqa: E402
from zoo import compiled_attention, tied_projection  # noqa: E402
from zoo.files import atomic_write_text  # noqa: E402
from zoo.precision import resolve_precision  # noqa: E402
from zoo.text.tokenizer import SPECIAL_TOKENS, train_tokenizer  # noqa: E402

RESULTS_FORMAT = 1
PEAK_DTYPES = ("float32", "bfloat16")
DEFAULT_OUT = pathlib.Path(__file__).resolve().parent / "results.json"
CORPORA = ("short", "long")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Scale of a run; :meth:`full` is the real measurement, :meth:`quick` a smoke test."""

    mode: str
    sequence_length: int
    batch_size: int
    vocabulary_size: int
    size: str
    overrides: dict
    lstm_overrides: dict
    num_batches: int  # distinct preprocessed batches that training cycles over
    window_steps: int
    windows: int
    warmup_windows: int
    pipeline_warmup_batches: int
    pipeline_batches: int
    corpus_limit: int | None  # docstrings of the default corpus used; None: all
    long_words: int
    tokenizer_documents: int | None  # docstrings for the tokenizer comparison; None: all training ones
    matmul_size: int
    quality_size: str  # zoo BERT preset of the quality check
    quality_overrides: dict
    quality_steps: int

    @classmethod
    def full(cls) -> "Settings":
        gpu = hardware.device_kind() != "cpu"
        return cls(
            mode="full", sequence_length=128, batch_size=32, vocabulary_size=8192, size="small", overrides={},
            lstm_overrides={}, num_batches=20, window_steps=10 if not gpu else 50, windows=5, warmup_windows=1,
            pipeline_warmup_batches=5, pipeline_batches=50, corpus_limit=None,
            long_words=corpora.LONG_DOCUMENT_WORDS, tokenizer_documents=None, matmul_size=8192 if gpu else 2048,
            quality_size="tiny", quality_overrides={}, quality_steps=2000 if gpu else 400,
        )

    @classmethod
    def quick(cls) -> "Settings":
        return cls(
            mode="quick", sequence_length=32, batch_size=8, vocabulary_size=600, size="tiny",
            overrides={"num_layers": 1, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64},
            lstm_overrides={"num_layers": 1, "hidden_dim": 32, "embedding_dim": 32},
            num_batches=3, window_steps=2, windows=2, warmup_windows=1, pipeline_warmup_batches=1,
            pipeline_batches=2, corpus_limit=600, long_words=100, tokenizer_documents=200, matmul_size=256,
            quality_size="tiny", quality_overrides={"num_layers": 1, "num_heads": 2, "hidden_dim": 32,
                                                    "intermediate_dim": 64}, quality_steps=4,
        )


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Benchmark:
    """One run: the measurements of every row, in the order they were taken."""

    def __init__(self, settings: Settings, model_names=tuple(models.MODELS), corpus_names=CORPORA):
        self.settings = settings
        self.model_names = tuple(model_names)
        self.corpus_names = tuple(corpus_names)
        self.default_precision = resolve_precision("auto")
        self.peaks = {}
        self.peak_samples = {dtype: [] for dtype in PEAK_DTYPES}
        self.peak_kernels = {dtype: [] for dtype in PEAK_DTYPES}  # the faster kernel at each sample
        self.texts = {}
        self.tokenizers = {}

    # -- setup -------------------------------------------------------------------

    def measure_peaks(self) -> dict:
        """The first matmul peak sample of each dtype, in full (the run's peaks are medians of all samples)."""
        for dtype in PEAK_DTYPES:
            _log(f"matmul peak {dtype} ({self.settings.matmul_size}²)")
            self.peaks[dtype] = hardware.matmul_peak(dtype, self.settings.matmul_size)
            self._keep_sample(self.peaks[dtype])
        return self.peaks

    def sample_peaks(self) -> dict:
        """One more matmul peak sample of each dtype, taken now (before a row trains), in FLOP/s."""
        return {dtype: self._keep_sample(hardware.matmul_peak(dtype, self.settings.matmul_size))
                for dtype in PEAK_DTYPES}

    def _keep_sample(self, peak: dict) -> float:
        self.peak_samples[peak["dtype"]].append(peak["flops_per_s"])
        self.peak_kernels[peak["dtype"]].append(peak["kernel"])
        return peak["flops_per_s"]

    def median_peaks(self) -> dict:
        """Each dtype's peak over the run: the median of its samples, which the MFU figures divide by."""
        for dtype, samples in self.peak_samples.items():
            peak, median = self.peaks[dtype], statistics.median(samples)
            peak.update(flops_per_s=median, median_s=2.0 * peak["size"] ** 3 / median, samples=list(samples),
                        sample_kernels=list(self.peak_kernels[dtype]), first_flops_per_s=samples[0])
        return self.peaks

    def prepare_corpora(self) -> dict:
        self.texts = corpora.corpora(self.settings.corpus_limit, self.settings.long_words)
        return {name: corpora.describe(documents) for name, documents in self.texts.items()}

    def train_tokenizers(self) -> None:
        for kind in ("wordpiece", "byte_bpe"):
            _log(f"training the {kind} vocabulary ({self.settings.vocabulary_size})")
            self.tokenizers[kind] = train_tokenizer(self.texts["short"], kind, self.settings.vocabulary_size)

    # -- rows --------------------------------------------------------------------

    def dims_overrides(self, name: str) -> dict:
        """The preset overrides of this run's scale for benchmark model `name`."""
        return self.settings.lstm_overrides if name == "lstm_clm" else self.settings.overrides

    def dims(self, name: str) -> dict:
        """The full dimensions of benchmark model `name`, with the trained vocabulary's size."""
        dims = models.dimensions(name, self.settings.size, self.dims_overrides(name))
        dims["vocabulary_size"] = self.tokenizers[models.MODELS[name][2]].vocabulary_size
        return dims

    def flops_of(self, name: str):
        dims, head = self.dims(name), models.MODELS[name][3]
        if name == "lstm_clm":
            keys = ("num_layers", "hidden_dim", "embedding_dim", "vocabulary_size")
            return lambda c: flops.lstm_flops(c["tokens"], **{k: dims[k] for k in keys})
        keys = ("num_layers", "hidden_dim", "intermediate_dim", "vocabulary_size")
        return lambda c: flops.transformer_flops(
            c["tokens"], c["predictions"], head=head, sequence_length=self.settings.sequence_length,
            **{k: dims[k] for k in keys},
        )

    def measure(self, side: str, name: str, corpus: str, precision: str) -> dict:
        """Build, time the pipeline, train and time one side of a row; free it again."""
        s = self.settings
        tokenizer = self.tokenizers[models.MODELS[name][2]]
        documents = self.texts[corpus]
        _log(f"{name}/{corpus}: {side} ({precision})")
        keras.utils.set_random_seed(0)  # the same initial weights and dropout stream in every run
        with hardware.PeakMemory() as peak:
            if side == "zoo":
                task = models.zoo_task(name, tokenizer, size=s.size, overrides=self.dims_overrides(name),
                                       sequence_length=s.sequence_length, precision=precision)
                data = models.zoo_batches(task, documents, s.batch_size)
            else:
                task, preprocessor = models.keras_hub_task(name, tokenizer, dims=self.dims(name),
                                                           sequence_length=s.sequence_length, precision=precision)
                data = models.keras_hub_batches(preprocessor, documents, s.batch_size)
            pipeline = timing.time_pipeline(data, warmup_batches=s.pipeline_warmup_batches, batches=s.pipeline_batches)
            batches, counts = timing.materialize(data, s.num_batches)
            adjacent = self.sample_peaks()
            result = timing.time_training(
                task, batches, counts, window_steps=s.window_steps, windows=s.windows,
                warmup_windows=s.warmup_windows, flops=self.flops_of(name),
            )
        result.update({
            "side": side,
            "precision": task.backbone.dtype_policy.name,
            "jit_compile": bool(task.jit_compile),
            "parameters": int(task.count_params()),
            "pipeline_sequences_per_s": pipeline["sequences_per_s"],
            "pipeline_over_consumption": pipeline["sequences_per_s"] / result["sequences_per_s"],
            "peak_sample": adjacent,
            "mfu_float32_adjacent": result["flops_per_s"] / adjacent["float32"],
            "peak_memory_mb": peak.megabytes,
            "memory_baseline_mb": peak.baseline_megabytes,
            "peak_memory_source": peak.source,
        })
        if side == "zoo" and name in models.KERAS_HUB_MODELS:
            result["matmul_ceiling"] = self.matmul_ceiling(name, counts, task.backbone.dtype_policy.compute_dtype,
                                                           adjacent["float32"])
        del task, data, batches
        keras.backend.clear_session()
        gc.collect()
        return result

    def matmul_ceiling(self, name: str, counts: list, dtype: str, peak_flops_per_s: float) -> dict:
        """MFU (of `peak_flops_per_s`) of transformer `name` running only its matmuls, on a mean batch of `counts`."""
        mean = {key: sum(c[key] for c in counts) / len(counts) for key in ("tokens", "predictions")}
        dims = self.dims(name)
        products = ceiling.transformer_products(
            tokens=round(mean["tokens"]), predictions=round(mean["predictions"]), head=models.MODELS[name][3],
            sequence_length=self.settings.sequence_length,
            **{k: dims[k] for k in ("num_layers", "num_heads", "hidden_dim", "intermediate_dim", "vocabulary_size")},
        )
        return ceiling.matmul_ceiling(self.flops_of(name)(mean), products, peak_flops_per_s, dtype)

    def held_out_accuracy(self, task) -> dict:
        """Masked-token accuracy of `task` on the held-out documents (the same masks for every task)."""
        held_out = self.texts["held_out"]
        scores = task.evaluate(held_out, batch_size=self.settings.batch_size, return_dict=True, verbose=0)
        accuracy = next(value for key, value in scores.items() if key.endswith("accuracy"))
        dataset = task.preprocessor.training_dataset(held_out, self.settings.batch_size, shuffle=False)
        predictions = sum(float(tf.reduce_sum(weights["mlm"])) for _, _, weights in dataset)
        return {"held_out_accuracy": float(accuracy), "held_out_predictions": int(predictions)}

    def rows(self) -> list:
        """Every training row; zoo first, then keras-hub, for each model and corpus."""
        rows, keras_hub_float32 = [], {}
        for name in self.model_names:
            for corpus in self.corpus_names:
                row = {"name": f"{name}/{corpus}", "model": name, "corpus": corpus,
                       "zoo": self.measure("zoo", name, corpus, "auto"), "keras_hub": None}
                if name in models.KERAS_HUB_MODELS:
                    row["keras_hub"] = keras_hub_float32[name, corpus] = self.measure(
                        "keras_hub", name, corpus, "float32")
                rows.append(row)
        if self.default_precision != "float32" and "long" in self.corpus_names:
            for name in (name for name in self.model_names if name in models.KERAS_HUB_MODELS):
                row = {"name": f"{name}/long/float32", "model": name, "corpus": "long",
                       "zoo": self.measure("zoo", name, "long", "float32"),
                       "keras_hub": keras_hub_float32[name, "long"]}
                rows.append(row)
        peaks = self.median_peaks()
        for row in rows:
            for side in (row["zoo"], row["keras_hub"]):
                if side is not None:
                    _with_mfu(side, peaks)
        return [_with_ratios(row) for row in rows]

    # -- quality -----------------------------------------------------------------

    def quality(self) -> dict | None:
        """Held-out masked-token accuracy of zoo BERT at its default precision against float32, same batches.

        Both train the ``quality_size`` preset from the same initial weights
        for ``quality_steps`` steps on the same batches of the long corpus.
        The standard error is that of the difference of two independent
        binomial proportions over the held-out predictions (the masks are
        the same for both, so it overstates the noise). ``None`` where the
        default precision is float32 or the run has no ``bert_mlm/long``.
        """
        if self.default_precision == "float32" or "bert_mlm" not in self.model_names or "long" not in self.corpus_names:
            return None
        s, scores = self.settings, {}
        for precision in (self.default_precision, "float32"):
            _log(f"quality: bert_mlm/long {s.quality_size}, {s.quality_steps} steps, {precision}")
            keras.utils.set_random_seed(0)
            task = models.zoo_task("bert_mlm", self.tokenizers["wordpiece"], size=s.quality_size,
                                   overrides=s.quality_overrides, sequence_length=s.sequence_length, precision=precision)
            history = task.fit(models.zoo_batches(task, self.texts["long"], s.batch_size),
                               steps_per_epoch=s.quality_steps, epochs=1, verbose=0)
            scores[precision] = {**self.held_out_accuracy(task), "final_loss": float(history.history["loss"][-1])}
            del task
            keras.backend.clear_session()
            gc.collect()
        default, full = scores[self.default_precision], scores["float32"]
        a, b = default["held_out_accuracy"], full["held_out_accuracy"]
        n = max(1, default["held_out_predictions"])
        error = math.sqrt((a * (1 - a) + b * (1 - b)) / n)
        return {
            "precision": self.default_precision, "size": s.quality_size, "steps": s.quality_steps,
            "tokens": s.quality_steps * s.batch_size * s.sequence_length, "accuracy": a, "float32_accuracy": b,
            "difference": a - b, "standard_error": error, "predictions": n,
            "within_two_standard_errors": abs(a - b) <= 2 * error,
            "final_loss": default["final_loss"], "float32_final_loss": full["final_loss"],
        }

    # -- tokenizer ---------------------------------------------------------------

    def tokenizer_training(self) -> dict:
        """zoo's ``train_tokenizer`` against keras-hub's ``compute_word_piece_vocabulary``, same text and size."""
        texts = self.texts["short"][: self.settings.tokenizer_documents]
        size = self.settings.vocabulary_size
        _log(f"tokenizer training: zoo wordpiece on {len(texts)} documents")
        start = time.perf_counter()
        zoo_vocabulary = train_tokenizer(texts, "wordpiece", size).vocabulary_size
        zoo_s = time.perf_counter() - start
        _log("tokenizer training: keras_hub.tokenizers.compute_word_piece_vocabulary")
        start = time.perf_counter()
        hub_vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
            tf.data.Dataset.from_tensor_slices(texts).batch(1000), size, lowercase=True, strip_accents=True,
            reserved_tokens=list(SPECIAL_TOKENS["wordpiece"].values()),
        )
        hub_s = time.perf_counter() - start
        return {
            "documents": len(texts), "megabytes": corpora.describe(texts)["megabytes"], "vocabulary_size": size,
            "zoo_s": zoo_s, "keras_hub_s": hub_s, "speedup": hub_s / zoo_s,
            "zoo_vocabulary": zoo_vocabulary, "keras_hub_vocabulary": len(hub_vocabulary),
        }


def _with_mfu(side: dict, peaks: dict) -> dict:
    """Set one side's MFU figures against the run's median `peaks` (idempotent: rows may share a side)."""
    side["mfu_float32"] = side["flops_per_s"] / peaks["float32"]["flops_per_s"]
    side["mfu_bfloat16"] = side["flops_per_s"] / peaks["bfloat16"]["flops_per_s"]
    if "matmul_ceiling" in side:
        matmuls = side["matmul_ceiling"]
        matmuls.setdefault("mfu_adjacent", matmuls["mfu"])  # matmul_ceiling divided by the adjacent sample
        matmuls["mfu"] = matmuls["flops_per_step"] / matmuls["seconds_per_step"] / peaks["float32"]["flops_per_s"]
    return side


def _with_ratios(row: dict) -> dict:
    zoo_side, hub_side = row["zoo"], row["keras_hub"]
    row["ratio"] = None if hub_side is None else {
        key: zoo_side[key] / hub_side[key]
        for key in ("useful_tokens_per_s", "steps_per_s", "sequences_per_s", "mfu_float32")
    }
    return row


def run_benchmark(settings: Settings, model_names=tuple(models.MODELS), corpus_names=CORPORA) -> dict:
    """Take every measurement of one run (of the models and corpora named) and return it as a JSON-ready dict."""
    started = time.perf_counter()
    bench = Benchmark(settings, model_names, corpus_names)
    result = {
        "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": hardware.describe_device(),
        "versions": hardware.versions(),
        "settings": dataclasses.asdict(settings),
        "models": list(model_names),
        "corpora_run": list(corpus_names),
        "default_precision": bench.default_precision,
        "peaks": bench.measure_peaks(),
        "corpora": bench.prepare_corpora(),
    }
    bench.train_tokenizers()
    result["rows"] = bench.rows()
    result["peaks"] = bench.peaks  # now the medians of every sample (Benchmark.median_peaks)
    result["quality"] = bench.quality()
    result["tokenizer"] = bench.tokenizer_training()
    result["tied_projection"] = tied_projection.measured_choices()
    result["compiled_attention"] = compiled_attention.measured_choices()
    result["elapsed_s"] = time.perf_counter() - started
    return result


def write_results(path: pathlib.Path, run: dict) -> dict:
    """Put `run` into the results file at `path` under its device kind, keeping the other kinds' runs."""
    results = {"format": RESULTS_FORMAT, "runs": {}}
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(existing, dict) and isinstance(existing.get("runs"), dict):
            results["runs"].update(existing["runs"])
    except (OSError, ValueError):
        pass  # no results yet, or an unreadable file: start afresh
    results["runs"][run["device"]["kind"]] = run
    atomic_write_text(path, json.dumps(results, indent=2, sort_keys=False) + "\n")
    return results


def _number(value, digits: int = 0, scale: float = 1.0) -> str:
    if value is None:
        return "-"
    return f"{value * scale:,.{digits}f}"


def _peak_kernels(peak: dict) -> str:
    """`` (faster kernel per sample: matmul 4, xla 9)``: which kernel each peak sample was taken on."""
    kernels = peak["sample_kernels"]
    return f" (faster kernel per sample: {', '.join(f'{k} {kernels.count(k)}' for k in sorted(set(kernels)))})"


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_table(run: dict) -> str:
    """The printed summary of `run`: one line per row, then pipelines, tokenizer, peaks and quality."""
    lines = []
    device = run["device"]
    lines.append(
        f"device: {device['cpu_model']} ({device['cpu_cores']} cores){', ' + ', '.join(device['gpus']) if device['gpus'] else ''}"
        f"; default precision {run['default_precision']}; CPU allocator {device['cpu_allocator']}"
        f"; mode {run['settings']['mode']}"
    )
    peaks = run["peaks"]
    lines.append(
        f"matmul peak (median of {len(peaks['float32'].get('samples', [0]))} samples): "
        + ", ".join(f"{dtype} {_number(peaks[dtype]['flops_per_s'], 1, 1e-9)} GFLOP/s{_peak_kernels(peaks[dtype])}"
                    for dtype in ("float32", "bfloat16"))
    )
    header = (f"{'row':<24}{'zoo tok/s':>11}{'hub tok/s':>11}{'ratio':>7}{'zoo st/s':>10}{'hub st/s':>10}"
              f"{'zoo MFU32':>10}{'adj32':>7}{'ceil32':>8}{'hub MFU32':>10}{'zoo MB':>8}{'hub MB':>8}{'zoo 1st s':>10}{'hub 1st s':>10}"
              f"  precision / xla")
    lines += ["", header, "-" * len(header)]
    for row in run["rows"]:
        z, h, r = row["zoo"], row["keras_hub"] or {}, row["ratio"] or {}
        lines.append(
            f"{row['name']:<24}{_number(z['useful_tokens_per_s']):>11}{_number(h.get('useful_tokens_per_s')):>11}"
            f"{_number(r.get('useful_tokens_per_s'), 2):>7}{_number(z['steps_per_s'], 2):>10}"
            f"{_number(h.get('steps_per_s'), 2):>10}{_percent(z['mfu_float32']):>10}{_percent(z['mfu_float32_adjacent']):>7}"
            f"{_percent(z.get('matmul_ceiling', {}).get('mfu')):>8}{_percent(h.get('mfu_float32')):>10}"
            f"{_number(z['peak_memory_mb']):>8}"
            f"{_number(h.get('peak_memory_mb')):>8}{_number(z['first_step_s'], 1):>10}"
            f"{_number(h.get('first_step_s'), 1):>10}  {z['precision']}/{z['jit_compile']}"
            + (f" vs {h['precision']}/{h['jit_compile']}" if h else "")
        )
    lines += ["", f"{'input pipeline alone':<24}{'zoo seq/s':>11}{'x train':>9}{'hub seq/s':>11}{'x train':>9}"]
    for row in run["rows"]:
        z, h = row["zoo"], row["keras_hub"] or {}
        lines.append(
            f"{row['name']:<24}{_number(z['pipeline_sequences_per_s']):>11}{_number(z['pipeline_over_consumption'], 1):>9}"
            f"{_number(h.get('pipeline_sequences_per_s')):>11}{_number(h.get('pipeline_over_consumption'), 1):>9}"
        )
    t = run["tokenizer"]
    lines += ["", (
        f"tokenizer training ({t['documents']} documents, {t['megabytes']} MB, vocabulary {t['vocabulary_size']}): "
        f"zoo {t['zoo_s']:.2f} s, compute_word_piece_vocabulary {t['keras_hub_s']:.2f} s, speedup {t['speedup']:.1f}x"
    )]
    q = run["quality"]
    if q:
        lines.append(
            f"quality (bert_mlm/long {q['size']}, {q['steps']} steps, held-out masked accuracy, "
            f"{q['predictions']} predictions): {q['precision']} "
            f"{q['accuracy']:.4f} vs float32 {q['float32_accuracy']:.4f} (difference {q['difference']:+.4f}, "
            f"standard error {q['standard_error']:.4f})"
        )
    for choice in run.get("tied_projection", []):
        lines.append(
            f"tied projection [{choice['rows']}, {choice['hidden_dim']}] x [{choice['vocabulary_size']}, "
            f"{choice['hidden_dim']}]^T {choice['dtype']}: {choice['kernel']} (matmul "
            f"{1e3 * choice['seconds']['matmul']:.1f} ms, xla {1e3 * choice['seconds']['xla']:.1f} ms)"
        )
    for choice in run.get("compiled_attention", []):
        lines.append(
            f"attention {choice['query_shape']} x {choice['key_positions']} keys {choice['dtype']}, mask "
            f"{choice['mask_shape']}: {choice['kernel']} (ops {1e3 * choice['seconds']['ops']:.1f} ms, "
            f"xla {1e3 * choice['seconds']['xla']:.1f} ms)"
        )
    lines.append(f"elapsed {run['elapsed_s']:.0f} s")
    return "\n".join(lines)


def _names(choices: tuple):
    """An argparse type: a comma-separated list of some of `choices`, returned in `choices` order."""
    def parse(text: str) -> tuple:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"expected some of {','.join(choices)}, got {text!r}")
        return tuple(name for name in choices if name in names)
    return parse


def main(argv=None) -> int:
    """Parse the command line, run the benchmark, print the table and write the results file."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models and corpus slices: a smoke test of a few minutes")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT,
                        help=f"JSON results file (default {DEFAULT_OUT.relative_to(DEFAULT_OUT.parent.parent)})")
    parser.add_argument("--models", type=_names(tuple(models.MODELS)), default=tuple(models.MODELS),
                        help=f"comma-separated subset of {','.join(models.MODELS)} (default: all)")
    parser.add_argument("--corpora", type=_names(CORPORA), default=CORPORA,
                        help=f"comma-separated subset of {','.join(CORPORA)} (default: all)")
    args = parser.parse_args(argv)
    if args.out.is_dir():
        parser.error(f"--out {args.out} is a folder; give a file path such as {args.out / 'results.json'}")
    try:  # fail now rather than after the run
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"--out {args.out}: cannot create its folder ({error.strerror}); pick a writable path")
    if not os.access(args.out.parent, os.W_OK):
        parser.error(f"--out {args.out}: its folder is not writable; pick a writable path")
    settings = Settings.quick() if args.quick else Settings.full()
    run = run_benchmark(settings, args.models, args.corpora)
    write_results(args.out, run)
    print(format_table(run))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
