"""Denoising (``denoising``): corrupt the input, reconstruct the original through a decoder.

Token mode (backbones with ``decoder``: the sequence autoencoder). The
encoder reads a corrupted block, the decoder is trained with teacher
forcing (its input is the target shifted right, starting with the start
token) and the head is tied to the token embedding. Noise functions
(:mod:`zoo.objectives.noise`), combinable, with their published defaults:

- ``token_masking`` (``rate=0.15``): BERT's 15% of tokens become the mask
  token (BART's token masking; all of them masked, none random or kept).
- ``token_deletion`` (``rate=0.15``): tokens deleted (BART gives no rate
  for it; zoo takes BERT's 15%).
- ``span_infilling`` (``rate=0.3, poisson_lambda=3``): BART's text
  infilling: spans of Poisson(3) lengths covering 30% of the tokens, each
  replaced by one mask token; a zero-length span inserts a mask.
- ``sentence_permutation``: BART's: sentences shuffled (they end at ``.``,
  ``!``, ``?`` or the end token: ``ModelSpec.sentence_end_ids``).
- ``span_corruption`` (``noise_density=0.15, mean_noise_span_length=3``):
  T5's: each noise span becomes a sentinel ``<extra_id_i>``
  (``ModelSpec.sentinel_ids``, unique per span, in order) and the target is
  the spans, each after its sentinel, then the end token.

Choices:

- Default noise: ``span_infilling`` + ``sentence_permutation``, BART's best
  combination (its large model was trained with exactly these).
- Noise applies in the order listed above, whatever order it is given in
  (as fairseq: sentences first, while their ends are intact). Shares are
  of the tokens left by the earlier functions; masks already placed are
  never picked again. ``span_corruption`` changes the target, so it is
  used alone.
- Noise never touches special tokens: start, end (document boundaries of
  packed blocks), padding, mask, sentinels.
- The reconstruction target is the original block without its start
  token, followed by the end token: ``[CLS] a b [SEP] c`` is read by the
  decoder as ``[CLS] a b [SEP] c`` and labelled ``a b [SEP] c [SEP]``.
  Weights are 1 on the target's tokens, 0 on padding; the decoder is as
  long as the block (reconstruction) or as the longest T5 target.
- Metrics: token accuracy and ``exact_match``, the share of sequences
  whose every target token is the argmax (teacher forcing).

Vector mode (``zoo.build("autoencoder", input_dim=...)``): noise on the
float features, mean squared error against the clean ones:
``gaussian`` (``stddev=0.1``, added; Vincent et al. 2010 use 0.05 to 0.5 on
standardised features) and ``dropout`` (``rate=0.25``: Vincent et al.'s
masking noise level, survivors scaled by ``1 / (1 - rate)`` as Keras's
``Dropout`` does); default ``gaussian``.

Parameters: ``noise`` is a name, a list of names, or a dict of name to
parameters: ``zoo.build("autoencoder", objective={"denoising": {"noise":
{"span_infilling": {"rate": 0.2}, "sentence_permutation": {}}}})``.

Serving (:func:`zoo.export`): the text is encoded as ``Task.predict`` does
and decoded greedily in-graph (a ``tf.while_loop``) until the end token:
``text`` is the decoded text (for ``span_corruption``, the spans with their
sentinels), ``token_ids`` the decoded ids, padded.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from zoo.errors import ConfigError, unknown_name
from zoo.hookspecs import hookimpl
from zoo.objective import Objective
from zoo.objectives import noise as noise_ops
from zoo.sparse_accuracy import SparseAccuracy, sparse_top1_matches

#: Token noise functions, in the order they apply, with their defaults.
TOKEN_NOISE = {
    "sentence_permutation": {},
    "token_masking": {"rate": 0.15},
    "token_deletion": {"rate": 0.15},
    "span_infilling": {"rate": 0.3, "poisson_lambda": 3.0},
    "span_corruption": {"noise_density": 0.15, "mean_noise_span_length": 3.0},
}
#: Feature noise functions of vector mode, in the order they apply, with their defaults.
VECTOR_NOISE = {"gaussian": {"stddev": 0.1}, "dropout": {"rate": 0.25}}
DEFAULT_TOKEN_NOISE = ("span_infilling", "sentence_permutation")
DEFAULT_VECTOR_NOISE = ("gaussian",)
SHUFFLE_BUFFER_SIZE = 10_000


class Denoising(Objective):
    """Reconstruct the original from a corrupted input.

    Args:
        noise: a noise name, a list of names, or a dict of name to
            parameters (see the module docstring); default: span infilling
            with sentence permutation for tokens, Gaussian noise for vectors.
        loss_weight: weight of this loss in the total.

    The mode (tokens or feature vectors) is the backbone's: it is known once
    the head is built, and :meth:`loss` and :meth:`metrics` follow it.

    Inputs added: ``decoder_token_ids`` and ``decoder_padding_mask`` (token
    mode). Labels: the target token ids (token mode) or the clean features
    (vector mode); weights 1 on target tokens, or 1 per example.

    Example:
        >>> Denoising(noise=["token_masking", "span_infilling"]).noise
        {'token_masking': {'rate': 0.15}, 'span_infilling': {'rate': 0.3, 'poisson_lambda': 3.0}}
        >>> Denoising(noise={"gaussian": {"stddev": 0.5}}).noise
        {'gaussian': {'stddev': 0.5}}
    """

    name = "denoising"
    requires = frozenset({"decoder"})
    description = "denoising autoencoding (BART, T5): corrupt the input, reconstruct it with the decoder"

    def __init__(self, *, noise=None, loss_weight: float = 1.0):
        super().__init__(loss_weight=loss_weight)
        self.noise = None if noise is None else _parse_noise(noise)
        self._vector = False

    # -- configuration -------------------------------------------------------------

    def _resolve(self, spec, sequence_length=None) -> dict:
        """The noise for this backbone: the default of its mode, or the given one checked against it."""
        vector = "features" in spec.input_names
        table, default = (VECTOR_NOISE, DEFAULT_VECTOR_NOISE) if vector else (TOKEN_NOISE, DEFAULT_TOKEN_NOISE)
        noise = self.noise if self.noise is not None else {name: dict(table[name]) for name in default}
        wrong = [name for name in noise if name not in table]
        if wrong:
            mode = "feature vectors" if vector else "token sequences"
            raise ConfigError(
                f"denoising noise {', '.join(wrong)} does not apply to {mode} ({spec.family}); "
                f"use {', '.join(table)}"
            )
        if "span_corruption" in noise and sequence_length is not None:
            needed = noise_ops.max_noise_spans(sequence_length, **_corruption_params(noise))
            if len(spec.sentinel_ids) < needed:
                raise ConfigError(
                    f"denoising span_corruption needs {needed} sentinel tokens for sequence_length "
                    f"{sequence_length}, the tokenizer has {len(spec.sentinel_ids)}; use the default tokenizer "
                    f"or tokenizer.with_sentinels({max(needed, 100)})"
                )
        self._vector = vector
        return {name: noise[name] for name in table if name in noise}

    # -- data half ----------------------------------------------------------------

    def prepare(self, features, spec, seed):
        noise = self._resolve(spec)
        seeds = tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), len(noise)))
        if self._vector:
            return self._prepare_vectors(features, noise, seeds)
        ids = spec.special_token_ids
        token_ids, padding_mask = features["token_ids"], features["padding_mask"]
        corrupted, corrupted_mask = token_ids, padding_mask
        target = None
        for (name, params), noise_seed in zip(noise.items(), seeds):
            candidate = noise_ops.candidates(corrupted, corrupted_mask, spec.all_special_ids)
            if name == "sentence_permutation":
                corrupted, corrupted_mask = noise_ops.sentence_permutation(
                    corrupted, corrupted_mask, noise_seed, sentence_end_ids=spec.sentence_end_ids, end_id=ids["end"]
                )
            elif name == "token_masking":
                corrupted, corrupted_mask = noise_ops.token_masking(
                    corrupted, corrupted_mask, noise_seed, candidate=candidate, mask_id=ids["mask"], **params
                )
            elif name == "token_deletion":
                corrupted, corrupted_mask = noise_ops.token_deletion(
                    corrupted, corrupted_mask, noise_seed, candidate=candidate, pad_id=ids["pad"], **params
                )
            elif name == "span_infilling":
                corrupted, corrupted_mask = noise_ops.span_infilling(
                    corrupted, corrupted_mask, noise_seed, candidate=candidate, mask_id=ids["mask"],
                    pad_id=ids["pad"], **params
                )
            else:  # span_corruption, alone
                out = noise_ops.span_corruption(
                    corrupted, corrupted_mask, noise_seed, candidate=candidate, sentinel_ids=spec.sentinel_ids,
                    pad_id=ids["pad"], **params
                )
                corrupted, corrupted_mask = out["token_ids"], out["padding_mask"]
                target = (out["target_ids"], tf.reduce_sum(out["target_mask"], axis=1))
        if target is None:  # reconstruct the block, without its start token
            length = token_ids.shape[1]
            target = (token_ids[:, 1:], tf.reduce_sum(padding_mask, axis=1) - 1)
        else:
            length = noise_ops.max_target_length(token_ids.shape[1], **_corruption_params(noise)) + 1
        labels, decoder_token_ids, decoder_padding_mask = teacher_forcing(
            *target, length, start_id=ids["start"], end_id=ids["end"], pad_id=ids["pad"]
        )
        has_tokens = tf.reduce_any(padding_mask > 0, axis=1, keepdims=True)  # rows of padding only: no target
        decoder_padding_mask = decoder_padding_mask * tf.cast(has_tokens, tf.int32)
        decoder_token_ids = tf.where(decoder_padding_mask > 0, decoder_token_ids, ids["pad"])
        features = {
            **features,
            "token_ids": corrupted,
            "padding_mask": corrupted_mask,
            "decoder_token_ids": decoder_token_ids,
            "decoder_padding_mask": decoder_padding_mask,
        }
        return features, labels, tf.cast(decoder_padding_mask, tf.float32)

    def _prepare_vectors(self, features, noise, seeds):
        clean = tf.cast(features["features"], tf.float32)
        noisy = clean
        for (name, params), noise_seed in zip(noise.items(), seeds):
            if name == "gaussian":
                noisy = noisy + params["stddev"] * tf.random.stateless_normal(tf.shape(noisy), noise_seed)
            else:
                noisy = tf.nn.experimental.stateless_dropout(noisy, params["rate"], noise_seed)
        weights = tf.ones([tf.shape(clean)[0]], tf.float32)
        return {**features, "features": noisy}, clean, weights

    def dataset(self, task, x, y, *, batch_size, training):
        """Vector mode: noisy and clean batches from float features ``[n, input_dim]`` (an array or a dataset).

        Token mode leaves the data to the task (raw text, packed). Training
        reshuffles the vectors and redraws the noise every pass; evaluation
        gives the same noise every call.
        """
        if "features" not in task.spec.input_names:
            return None
        if y is not None:
            raise ConfigError("denoising reconstructs its own input; drop `y`")
        vectors = _vector_dataset(x, task.spec.hidden_dim)
        seed = task.preprocessor.seed
        if training:
            vectors = vectors.shuffle(SHUFFLE_BUFFER_SIZE, seed=seed, reshuffle_each_iteration=True)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=training).batch(2)
        batches = tf.data.Dataset.zip(vectors.batch(batch_size), seeds).map(
            lambda vectors, seed: task.preprocessor.prepare_batch({"features": vectors}, seed),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        )
        return batches.prefetch(tf.data.AUTOTUNE)

    def prepare_inference(self, features, spec):
        """Token mode: the decoder reads the text itself (teacher forcing), unless given decoder inputs."""
        if "features" in spec.input_names or "decoder_token_ids" in features:
            return features
        return {**features, "decoder_token_ids": features["token_ids"],
                "decoder_padding_mask": features["padding_mask"]}

    # -- model half ---------------------------------------------------------------

    def head_inputs(self, spec, sequence_length):
        self._resolve(spec, sequence_length)  # fail at build time, not in the first batch
        return {}

    def build_head(self, outputs, inputs, spec):
        self._resolve(spec)
        if self._vector:
            return keras.layers.Activation("linear", dtype="float32", name="denoising_reconstruction")(
                outputs["reconstruction"]
            )
        return spec.token_embedding(outputs["decoder_sequence_output"], reverse=True)

    def loss(self):
        """Cross-entropy on target tokens; mean squared error on feature vectors."""
        if self._vector:
            return keras.losses.MeanSquaredError(name=f"{self.name}_loss")
        return super().loss()

    def metrics(self):
        """Token accuracy and sequence ``exact_match``; mean absolute error on feature vectors."""
        if self._vector:
            return [keras.metrics.MeanAbsoluteError(name="mae")]
        return [SparseAccuracy(name="accuracy"), SequenceExactMatch(name="exact_match")]

    # -- serving ---------------------------------------------------------------------

    def serve(self, inputs, context):
        """Greedy reconstruction of each text: ``text`` (string ``[batch]``) and ``token_ids`` (int32, padded).

        The decoder starts from the start token and takes the most likely
        token at each step until the end token or ``sequence_length - 1``
        tokens; ``token_ids`` holds the decoded tokens then padding.
        """
        if self._vector:
            raise ConfigError("the vector autoencoder has no text endpoint; export a token autoencoder")
        ids, length = context.spec.special_token_ids, context.sequence_length
        features = context.features(inputs["text"])
        batch_size = tf.shape(features["token_ids"])[0]
        positions = tf.range(length)[None, :]
        decoder_token_ids = tf.where(positions == 0, ids["start"], tf.fill([batch_size, length], ids["pad"]))
        decoder_padding_mask = tf.ones_like(decoder_token_ids)

        def step(index, decoder_token_ids, done):
            model_inputs = {**features, "decoder_token_ids": decoder_token_ids,
                            "decoder_padding_mask": decoder_padding_mask}
            logits = tf.gather(context.outputs(model_inputs)[self.name], index, axis=1)
            chosen = tf.where(done, ids["pad"], tf.argmax(logits, axis=-1, output_type=tf.int32))
            decoder_token_ids = tf.where(positions == index + 1, chosen[:, None], decoder_token_ids)
            return index + 1, decoder_token_ids, done | (chosen == ids["end"])

        _, decoder_token_ids, _ = tf.while_loop(
            lambda index, _, done: (index < length - 1) & ~tf.reduce_all(done),
            step,
            [tf.constant(0), decoder_token_ids, tf.zeros([batch_size], tf.bool)],
            maximum_iterations=length - 1,
        )
        decoded = decoder_token_ids[:, 1:]
        before_end = tf.cumsum(tf.cast(decoded == ids["end"], tf.int32), axis=1) == 0
        decoded = tf.where(before_end, decoded, ids["pad"])
        lengths = tf.reduce_sum(tf.cast(before_end & (decoded != ids["pad"]), tf.int32), axis=1)
        text = context.detokenize(tf.RaggedTensor.from_tensor(decoded, lengths=lengths))
        return {"text": text, "token_ids": decoded}


def teacher_forcing(body, body_length, length: int, *, start_id: int, end_id: int, pad_id: int):
    """Labels, decoder inputs and decoder mask ``[batch, length]`` for targets ``body[:body_length]`` + end.

    The decoder input is the label sequence shifted right behind the start
    token; targets too long are cut at `length`.

    Example:
        >>> labels, decoder, mask = teacher_forcing(tf.constant([[7, 8, 0]]), tf.constant([2]), 4,
        ...                                         start_id=2, end_id=3, pad_id=0)
        >>> labels.numpy().tolist(), decoder.numpy().tolist(), mask.numpy().tolist()
        ([[7, 8, 3, 0]], [[2, 7, 8, 0]], [[1, 1, 1, 0]])
    """
    width = body.shape[1]
    if width is None or width < length:
        body = tf.pad(body, [[0, 0], [0, tf.maximum(length - tf.shape(body)[1], 0)]], constant_values=pad_id)
    body = body[:, :length]
    positions = tf.range(length)[None, :]
    body_length = tf.maximum(body_length, 0)[:, None]
    labels = tf.where(positions < body_length, body, tf.where(positions == body_length, end_id, pad_id))
    total = tf.minimum(body_length + 1, length)
    starts = tf.fill([tf.shape(body)[0], 1], tf.constant(start_id, body.dtype))
    decoder_token_ids = tf.where(positions < total, tf.concat([starts, labels[:, :-1]], axis=1), pad_id)
    return labels, decoder_token_ids, tf.cast(positions < total, tf.int32)


@keras.saving.register_keras_serializable(package="zoo")
class SequenceExactMatch(keras.metrics.Metric):
    """Share of sequences whose every weighted position's argmax equals its label.

    Example:
        >>> metric = SequenceExactMatch()
        >>> logits = tf.one_hot([[1, 2, 0], [1, 1, 0]], 3)
        >>> metric.update_state(tf.constant([[1, 2, 2], [1, 2, 0]]), logits, tf.constant([[1., 1., 0.], [1., 1., 1.]]))
        >>> float(metric.result())
        0.5
    """

    def __init__(self, name="exact_match", **kwargs):
        super().__init__(name=name, **kwargs)
        self.matches = self.add_variable(shape=(), initializer="zeros", name="matches")
        self.sequences = self.add_variable(shape=(), initializer="zeros", name="sequences")

    def update_state(self, y_true, y_pred, sample_weight=None):
        correct = sparse_top1_matches(y_true, y_pred) > 0
        weighted = ops.ones_like(correct) if sample_weight is None else ops.reshape(sample_weight, ops.shape(correct)) > 0
        matched = ops.all(ops.logical_or(correct, ops.logical_not(weighted)), axis=-1)
        counted = ops.any(weighted, axis=-1)
        self.matches.assign_add(ops.sum(ops.cast(ops.logical_and(matched, counted), self.dtype)))
        self.sequences.assign_add(ops.sum(ops.cast(counted, self.dtype)))

    def result(self):
        return self.matches / ops.maximum(self.sequences, 1.0)

    def reset_state(self):
        self.matches.assign(0.0)
        self.sequences.assign(0.0)


def _vector_dataset(x, input_dim: int) -> tf.data.Dataset:
    """Unbatched float32 vectors ``[input_dim]`` from an array or a dataset of vectors or batches of them."""
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        if not (isinstance(spec, tf.TensorSpec) and spec.dtype.is_floating and spec.shape.rank in (1, 2)
                and spec.shape[-1] == input_dim):
            raise ConfigError(
                f"the vector autoencoder takes a tf.data.Dataset of float vectors [{input_dim}] or batches "
                f"[batch, {input_dim}], got elements {spec}; map it to the feature vectors first"
            )
        x = x.unbatch() if spec.shape.rank == 2 else x
        return x.map(lambda vector: tf.cast(vector, tf.float32))
    try:
        array = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise ConfigError(
            f"the vector autoencoder takes float feature vectors [n, {input_dim}], got {type(x).__name__}"
        ) from None
    if array.ndim != 2 or array.shape[1] != input_dim or not len(array):
        raise ConfigError(f"the vector autoencoder takes feature vectors [n, {input_dim}], got shape {array.shape}")
    return tf.data.Dataset.from_tensor_slices(array)


def _corruption_params(noise) -> dict:
    return noise["span_corruption"]


def _parse_noise(noise) -> dict:
    """Name, list of names, or dict of name to parameters → {name: parameters with defaults}."""
    if isinstance(noise, str):
        noise = {noise: {}}
    elif isinstance(noise, (list, tuple)):
        if not all(isinstance(name, str) for name in noise):
            raise ConfigError(f"denoising noise names are strings, got {list(noise)!r}")
        noise = {name: {} for name in noise}
    elif not isinstance(noise, dict):
        raise ConfigError(
            f"denoising noise must be a name, a list of names or a dict of name to parameters, got {noise!r}"
        )
    if not noise:
        raise ConfigError("denoising needs at least one noise function; drop `noise` for the default")
    known = {**TOKEN_NOISE, **VECTOR_NOISE}
    parsed = {}
    for name, params in noise.items():
        if name not in known:
            raise unknown_name("denoising noise", name, known)
        if not isinstance(params, dict):
            raise ConfigError(f"denoising noise {name}: parameters must be a dict, got {params!r}")
        for key in params:
            if key not in known[name]:
                raise unknown_name(f"denoising {name} parameter", key, known[name])
        for key, value in params.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"denoising {name}: {key} must be a number, got {value!r}")
        parsed[name] = {**known[name], **{key: float(value) for key, value in params.items()}}
        _check_params(name, parsed[name])
    if "span_corruption" in parsed and len(parsed) > 1:
        raise ConfigError(
            "denoising span_corruption makes its own target (the dropped spans); use it alone, "
            f"not with {', '.join(n for n in parsed if n != 'span_corruption')}"
        )
    if any(name in VECTOR_NOISE for name in parsed) and any(name in TOKEN_NOISE for name in parsed):
        raise ConfigError(f"denoising noise {', '.join(parsed)} mixes token and feature-vector noise; pick one kind")
    return parsed


def _check_params(name, params) -> None:
    for key, value in params.items():
        if key == "rate" and not 0 < value < 1:
            raise ConfigError(f"denoising {name}: rate must be in (0, 1), got {value}")
        if key in ("poisson_lambda", "stddev") and not value > 0:
            raise ConfigError(f"denoising {name}: {key} must be > 0, got {value}")
        if key == "noise_density" and not 0 < value < 1:
            raise ConfigError(f"denoising {name}: noise_density must be in (0, 1), got {value}")
        if key == "mean_noise_span_length" and not value >= 1:
            raise ConfigError(f"denoising {name}: mean_noise_span_length must be >= 1, got {value}")


@hookimpl
def zoo_register_objectives(register):
    register(Denoising)
