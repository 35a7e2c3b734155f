"""The two sides of each benchmark row: zoo's task and the keras-hub task a user would write.

zoo: ``zoo.build(family, objective=..., size=..., sequence_length=...,
tokenizer=...)`` with its defaults (precision ``auto``, its AdamW, XLA as
zoo chooses), trained on batches of its own packing pipeline.

keras-hub: the backbone with the same dimensions and dropout, its
``*Preprocessor`` (which pads or truncates each document to the sequence
length) over the same vocabulary (zoo's trained tokenizer handed to
``BertTokenizer`` / ``GPT2Tokenizer``), the task built with
``preprocessor=None`` so that it trains on the preprocessed batches, and
compiled with the same AdamW as zoo (the task's default loss and metrics).
"""

from __future__ import annotations

import keras
import keras_hub
import tensorflow as tf

import zoo
from zoo import registry

SHUFFLE_BUFFER_SIZE = 10_000

#: Benchmark model name to (zoo family, zoo objective, tokenizer kind, head).
MODELS = {
    "bert_mlm": ("bert", "mlm", "wordpiece", "mlm"),
    "gpt_clm": ("gpt", "clm", "byte_bpe", "clm"),
    "lstm_clm": ("lstm_lm", "clm", "byte_bpe", "clm"),
}
#: keras-hub counterparts of the benchmark models (the LSTM LM has none).
KERAS_HUB_MODELS = ("bert_mlm", "gpt_clm")


def dimensions(name: str, size: str, overrides: dict) -> dict:
    """The zoo preset `size` of benchmark model `name` with `overrides` applied.

    Example:
        >>> dimensions("bert_mlm", "small", {})["hidden_dim"]
        256
    """
    family = registry.model_entry(MODELS[name][0]).value
    return {**family.presets[size], **overrides}


def adamw() -> keras.optimizers.Optimizer:
    """The optimizer zoo compiles with by default (see ``zoo.task.Task.compile``), for keras-hub too.

    Example:
        >>> adamw().global_clipnorm
        1.0
    """
    optimizer = keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.01, global_clipnorm=1.0)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def zoo_task(name: str, tokenizer, *, size: str, overrides: dict, sequence_length: int, precision: str = "auto"):
    """The zoo task of benchmark model `name`, built and compiled with zoo's defaults."""
    family, objective, _, _ = MODELS[name]
    return zoo.build(family, objective=objective, size=size, tokenizer=tokenizer, sequence_length=sequence_length,
                     precision=precision, **overrides)


def zoo_batches(task, documents, batch_size: int) -> tf.data.Dataset:
    """zoo's training pipeline over `documents`, repeated without end."""
    return task.preprocessor.training_dataset(tf.data.Dataset.from_tensor_slices(documents).repeat(), batch_size)


def keras_hub_task(name: str, tokenizer, *, dims: dict, sequence_length: int, precision: str = "float32"):
    """``(task, preprocessor)``: the keras-hub task and preprocessor of benchmark model `name`.

    `tokenizer` is the zoo tokenizer whose vocabulary keras-hub gets;
    `precision` a Keras dtype policy name for the backbone and head.
    """
    common = {
        name_: dims[name_]
        for name_ in ("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim", "dropout",
                      "max_sequence_length")
    }
    if name == "bert_mlm":
        hub_tokenizer = keras_hub.models.BertTokenizer(vocabulary=list(tokenizer.layer.get_vocabulary()),
                                                       lowercase=True)
        preprocessor = keras_hub.models.BertMaskedLMPreprocessor(hub_tokenizer, sequence_length=sequence_length)
        backbone = keras_hub.models.BertBackbone(**common, dtype=precision)
        task = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    elif name == "gpt_clm":
        hub_tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=dict(tokenizer.layer.vocabulary),
                                                       merges=list(tokenizer.layer.merges))
        preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(hub_tokenizer, sequence_length=sequence_length)
        backbone = keras_hub.models.GPT2Backbone(**common, dtype=precision)
        task = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
    else:
        raise ValueError(f"keras-hub has no counterpart of {name}; pick one of {KERAS_HUB_MODELS}")
    task.compile(optimizer=adamw())
    return task, preprocessor


def keras_hub_batches(preprocessor, documents, batch_size: int, seed: int = 0) -> tf.data.Dataset:
    """keras-hub's pipeline as its guides write it: shuffled strings, batched, ``map(preprocessor)``."""
    strings = tf.data.Dataset.from_tensor_slices(documents).repeat()
    strings = strings.shuffle(SHUFFLE_BUFFER_SIZE, seed=seed)
    return strings.batch(batch_size).map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
    )
