"""LSTM language model (Merity et al., 2018 style), registered as ``lstm_lm``.

A stack of left-to-right LSTMs over a token embedding. The output is
projected back to the embedding width, so language-model heads can tie
their output to the embedding as they do for GPT.
"""

from __future__ import annotations

import keras
import keras_hub
from keras import ops

from zoo.hookspecs import hookimpl
from zoo.models.common import check_options, describe
from zoo.spec import ModelFamily

PRESETS = {
    "tiny": {
        "vocabulary_size": 8192, "num_layers": 1, "hidden_dim": 256, "embedding_dim": 128, "dropout": 0.1,
        "max_sequence_length": 512,
    },
    "small": {
        "vocabulary_size": 8192, "num_layers": 2, "hidden_dim": 512, "embedding_dim": 256, "dropout": 0.1,
        "max_sequence_length": 512,
    },
    "base": {
        "vocabulary_size": 8192, "num_layers": 3, "hidden_dim": 1024, "embedding_dim": 512, "dropout": 0.1,
        "max_sequence_length": 512,
    },
}


@keras.saving.register_keras_serializable(package="zoo")
class LSTMBackbone(keras_hub.models.Backbone):
    """Stacked left-to-right LSTMs over a reversible token embedding.

    ``token_embedding`` (a ``keras.layers.ReversibleEmbedding``, as in
    keras-hub's backbones) → dropout → ``num_layers`` LSTMs of width
    ``hidden_dim`` with dropout between them → when
    ``hidden_dim != embedding_dim``, a Dense projection to ``embedding_dim``.
    ``sequence_output`` therefore always has the embedding's width, so an
    LM head can tie its output to the embedding:
    ``token_embedding(sequence_output, reverse=True)``.

    Position ``i`` of ``sequence_output`` depends only on tokens ``<= i``.
    Padding is on the right, so it never reaches a real position and no
    Keras mask is needed. ``pooled_output`` is ``sequence_output`` at the
    last position where ``padding_mask`` is 1 (position 0 for an all-padding row).

    Args:
        vocabulary_size: number of token ids.
        num_layers: number of stacked LSTMs.
        hidden_dim: width of each LSTM.
        embedding_dim: width of the embedding and of both outputs.
        dropout: rate after the embedding and between LSTMs.
        dtype: dtype policy of every layer; default, Keras's global policy.

    Inputs: int32 ``token_ids`` and ``padding_mask``, both ``[batch, length]``.
    Outputs: ``sequence_output`` ``[batch, length, embedding_dim]`` and
    ``pooled_output`` ``[batch, embedding_dim]``.

    Example:
        >>> import numpy as np
        >>> backbone = LSTMBackbone(vocabulary_size=100, num_layers=1, hidden_dim=16, embedding_dim=8)
        >>> outputs = backbone({"token_ids": np.ones((2, 5), "int32"), "padding_mask": np.ones((2, 5), "int32")})
        >>> tuple(outputs["sequence_output"].shape), tuple(outputs["pooled_output"].shape)
        ((2, 5, 8), (2, 8))
    """

    def __init__(self, vocabulary_size, num_layers, hidden_dim, embedding_dim, dropout=0.1, dtype=None, **kwargs):
        self.token_embedding = keras.layers.ReversibleEmbedding(
            vocabulary_size, embedding_dim, dtype=dtype, name="token_embedding"
        )
        self.embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.lstm_layers = [
            keras.layers.LSTM(hidden_dim, return_sequences=True, dtype=dtype, name=f"lstm_{i}")
            for i in range(num_layers)
        ]
        self.lstm_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="lstm_dropout")
        self.output_projection = None
        if hidden_dim != embedding_dim:
            self.output_projection = keras.layers.Dense(embedding_dim, dtype=dtype, name="output_projection")

        token_id_input = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask_input = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        x = self.embeddings_dropout(self.token_embedding(token_id_input))
        for i, lstm in enumerate(self.lstm_layers):
            if i:
                x = self.lstm_dropout(x)
            x = lstm(x)
        if self.output_projection is not None:
            x = self.output_projection(x)
        super().__init__(
            inputs={"token_ids": token_id_input, "padding_mask": padding_mask_input},
            outputs={"sequence_output": x, "pooled_output": last_position(x, padding_mask_input)},
            dtype=dtype,
            **kwargs,
        )
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.embedding_dim = embedding_dim
        self.dropout = dropout

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_layers": self.num_layers,
                "hidden_dim": self.hidden_dim,
                "embedding_dim": self.embedding_dim,
                "dropout": self.dropout,
            }
        )
        return config


def last_position(sequence, padding_mask):
    """``sequence[b, n_b - 1]``, where ``n_b`` counts the ones of right-padded ``padding_mask[b]``.

    Example:
        >>> import numpy as np
        >>> sequence = np.arange(6, dtype="float32").reshape(2, 3, 1)
        >>> last_position(sequence, np.array([[1, 1, 0], [0, 0, 0]])).numpy().tolist()
        [[1.0], [3.0]]
    """
    last = ops.maximum(ops.sum(padding_mask, axis=1) - 1, 0)
    return ops.take_along_axis(sequence, last[:, None, None], axis=1)[:, 0, :]


def build(config, special_token_ids):
    """Build an :class:`LSTMBackbone` and its :class:`~zoo.spec.ModelSpec`.

    Args:
        config: a preset of :data:`PRESETS` merged with overrides;
            ``max_sequence_length`` only sets the spec (an LSTM has no limit).
        special_token_ids: role to token id, passed through to the spec.

    Example:
        >>> backbone, spec = build(dict(PRESETS["tiny"], vocabulary_size=100), {"pad": 0})
        >>> sorted(spec.capabilities), spec.hidden_dim, spec.output_names
        (['causal', 'pooled'], 128, ('sequence_output', 'pooled_output'))
    """
    check_options(
        FAMILY, config,
        positive=("vocabulary_size", "num_layers", "hidden_dim", "embedding_dim", "max_sequence_length"),
    )
    backbone = LSTMBackbone(
        vocabulary_size=config["vocabulary_size"], num_layers=config["num_layers"],
        hidden_dim=config["hidden_dim"], embedding_dim=config["embedding_dim"], dropout=config["dropout"],
    )
    spec = describe(
        FAMILY, backbone, special_token_ids, vocabulary_size=config["vocabulary_size"],
        max_sequence_length=config["max_sequence_length"], hidden_dim=config["embedding_dim"],
    )
    return backbone, spec


FAMILY = ModelFamily(
    name="lstm_lm",
    build=build,
    presets=PRESETS,
    capabilities=frozenset({"causal", "pooled"}),
    tokenizer_kind="byte_bpe",
    default_objective="clm",
    description="stacked LSTM language model, output tied to the embedding: causal",
)


@hookimpl
def zoo_register_models(register):
    """Register the ``lstm_lm`` family."""
    register(FAMILY)
