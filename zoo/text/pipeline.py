"""The tf.data pipeline from raw strings to model inputs, labels and weights.

Training: strings → shuffle → structure stage → batch → each objective's
``prepare`` (seeded, stateless). The structure stage is the one objective's
:meth:`zoo.Objective.structure` that returns examples (NSP pairs), else the
default: tokenize (in-graph, in parallel) and pack into full blocks.
Inference: strings → tokenize → ``[start] tokens [end]`` (no ``[end]`` for
causal backbones, which continue the text) truncated and padded to the
sequence length → each objective's ``prepare_inference``.

Strings never leave this module as anything but dense int32 tensors.
"""

from __future__ import annotations

import keras_hub
import numpy as np
import tensorflow as tf

from zoo.errors import ConfigError, CorpusError
from zoo.objective import Objective
from zoo.text.packing import pack_token_stream

#: Documents tokenized together in one in-graph call before packing.
DOCUMENT_BATCH_SIZE = 256
SHUFFLE_BUFFER_SIZE = 10_000


def as_string_dataset(texts) -> tf.data.Dataset:
    """A dataset of scalar strings from a list, array or dataset of strings.

    Example:
        >>> [t.numpy() for t in as_string_dataset(["a b", "c"])]
        [b'a b', b'c']
    """
    if isinstance(texts, tf.data.Dataset):
        spec = texts.element_spec
        if not (isinstance(spec, tf.TensorSpec) and spec.dtype == tf.string and spec.shape.rank in (0, 1)):
            raise ConfigError(
                f"expected a tf.data.Dataset of strings (scalars or 1-D batches), got elements {spec}; "
                "map it to the text first"
            )
        return texts.unbatch() if spec.shape.rank == 1 else texts
    return tf.data.Dataset.from_tensor_slices(string_tensor(texts))


def string_tensor(texts) -> tf.Tensor:
    """A 1-D string tensor of a list or array of strings, refusing anything else by name.

    Example:
        >>> string_tensor(["a b", "c"]).numpy()
        array([b'a b', b'c'], dtype=object)
    """
    if isinstance(texts, (str, bytes)):
        raise ConfigError("expected a list of strings, got a single string; wrap it in a list")
    array = np.asarray(texts, dtype=object).reshape(-1)
    if array.size == 0:
        raise CorpusError("no text given: pass a non-empty list of strings")
    if not all(isinstance(t, (str, bytes)) for t in array):
        kinds = sorted({type(t).__name__ for t in array if not isinstance(t, (str, bytes))})
        raise ConfigError(f"expected strings, got {', '.join(kinds)}; pass raw text, one document per element")
    return tf.constant(array.tolist(), tf.string)


class Preprocessor:
    """Raw strings to ``(inputs, labels, sample_weights)`` for a task.

    Args:
        tokenizer: a :class:`zoo.text.tokenizer.Tokenizer`.
        spec: the backbone's :class:`zoo.spec.ModelSpec`.
        objectives: the task's :class:`zoo.Objective` instances, in order.
        sequence_length: length of every example.
        input_names: names of the task model's inputs (the rest is dropped).
        seed: seed of shuffling and of every objective's randomness.

    Example:
        >>> preprocessor.training_dataset(["some text", "more text"], batch_size=2)  # doctest: +SKIP
    """

    def __init__(self, tokenizer, spec, objectives, sequence_length, input_names, *, seed=0):
        structuring = [o.name for o in objectives if type(o).structure is not Objective.structure]
        if len(structuring) > 1:
            raise ConfigError(
                f"{' and '.join(structuring)} each build their own examples from documents; "
                "train them in separate tasks or keep one of them"
            )
        self.tokenizer = tokenizer
        self.spec = spec
        self.objectives = list(objectives)
        self.sequence_length = int(sequence_length)
        self.input_names = tuple(input_names)
        self.seed = int(seed)
        ids = spec.special_token_ids
        self._start_packer = keras_hub.layers.StartEndPacker(
            sequence_length=self.sequence_length,
            start_value=ids["start"],
            end_value=None if "causal" in spec.capabilities else ids["end"],
            pad_value=ids["pad"],
            return_padding_mask=True,
        )
        # inference_arrays' tokenizing function, traced on its first call
        self._inference_function = tf.function(
            self.inference_features, input_signature=[tf.TensorSpec([None], tf.string)]
        )

    # -- training ------------------------------------------------------------

    def training_dataset(self, texts, batch_size: int, *, shuffle: bool = True) -> tf.data.Dataset:
        """Packed, batched, corrupted examples for ``fit`` / ``evaluate``.

        With ``shuffle=True`` documents are reshuffled and masks redrawn on
        every pass (seeded); with ``shuffle=False`` every pass is identical.
        """
        if isinstance(texts, tf.data.Dataset):
            documents = as_string_dataset(texts)
        else:
            strings = string_tensor(texts)
            # Eagerly only: zoo train builds this inside flat_map, after checking its corpus itself.
            if tf.executing_eagerly() and not any(text.strip() for text in strings.numpy()):
                raise CorpusError(
                    "every text is empty or whitespace, so there is nothing to train on; pass texts with words"
                )
            documents = tf.data.Dataset.from_tensor_slices(strings)
        documents = documents.filter(lambda text: tf.strings.length(tf.strings.strip(text)) > 0)
        if shuffle:
            documents = documents.shuffle(SHUFFLE_BUFFER_SIZE, seed=self.seed, reshuffle_each_iteration=True)
        batches = self._structure(documents).batch(batch_size)
        seeds = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=shuffle).batch(2)
        examples = tf.data.Dataset.zip(batches, seeds).map(
            self.prepare_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        return examples.prefetch(tf.data.AUTOTUNE)

    def example_batches(self, texts, batch_size: int) -> tf.data.Dataset:
        """Batches of examples out of the structure stage, before any objective's ``prepare``.

        In document order (no shuffling), with ``segment_ids`` where the
        model takes them: what ``prepare`` receives, for testing objectives.
        """
        documents = as_string_dataset(texts).filter(lambda text: tf.strings.length(tf.strings.strip(text)) > 0)
        return self._structure(documents).batch(batch_size).map(self._with_segments)

    def _structure(self, documents) -> tf.data.Dataset:
        """Unbatched examples: the structuring objective's, else packed blocks."""
        for objective in self.objectives:
            examples = objective.structure(documents, self.tokenizer, self.spec, self.sequence_length, self.seed)
            if examples is not None:
                return examples
        chunks = documents.batch(DOCUMENT_BATCH_SIZE).map(
            self._tokenize_documents, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        return pack_token_stream(
            chunks,
            self.sequence_length,
            start_id=self.spec.special_token_ids["start"],
            pad_id=self.spec.special_token_ids["pad"],
        )

    def _tokenize_documents(self, texts):
        tokens = self.tokenizer(texts)
        ends = tf.fill([tokens.nrows(), 1], tf.constant(self.spec.special_token_ids["end"], tokens.dtype))
        return tf.concat([tokens, ends], axis=1).flat_values

    def prepare_batch(self, features: dict, seed) -> tuple:
        """Apply every objective's ``prepare`` to a batch of packed features.

        Each objective draws from its own stream, ``fold_in(seed, index)``.
        """
        features = self._with_segments(features)
        labels, weights = {}, {}
        for index, objective in enumerate(self.objectives):
            objective_seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), index)
            features, labels[objective.name], weights[objective.name] = objective.prepare(
                features, self.spec, objective_seed
            )
        return self._select_inputs(features), labels, weights

    # -- inference -----------------------------------------------------------

    def inference_features(self, texts) -> dict:
        """Model inputs for a batch of strings: one example per string, no corruption."""
        token_ids, padding_mask = self._start_packer(self.tokenizer(texts))
        return self.model_inputs(
            {"token_ids": tf.cast(token_ids, tf.int32), "padding_mask": tf.cast(padding_mask, tf.int32)}
        )

    def model_inputs(self, features: dict) -> dict:
        """Complete dense ``token_ids`` / ``padding_mask`` into the model's inputs for inference.

        Adds ``segment_ids`` where the backbone takes them and each
        objective's ``prepare_inference`` inputs; drops everything else.
        """
        features = self._with_segments(features)
        for objective in self.objectives:
            features = objective.prepare_inference(features, self.spec)
        return self._select_inputs(features)

    def inference_arrays(self, texts) -> dict:
        """Model inputs for ``predict`` of a list of strings, as NumPy arrays, one row per string.

        One function, traced once per preprocessor, makes them: a new
        ``tf.data`` iterator would instantiate the tokenizer's graph again
        on every call (about a second for a byte-level BPE tokenizer).
        """
        return {name: value.numpy() for name, value in self._inference_function(string_tensor(texts)).items()}

    def inference_dataset(self, texts, batch_size: int) -> tf.data.Dataset:
        """Batches of model inputs for ``predict``, in input order."""
        strings = as_string_dataset(texts).batch(batch_size)
        return strings.map(self.inference_features, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
            tf.data.AUTOTUNE
        )

    # -- helpers ---------------------------------------------------------------

    def _with_segments(self, features):
        if "segment_ids" in self.input_names and "segment_ids" not in features:
            features = {**features, "segment_ids": tf.zeros_like(features["token_ids"])}
        return features

    def _select_inputs(self, features):
        return {name: features[name] for name in self.input_names}
