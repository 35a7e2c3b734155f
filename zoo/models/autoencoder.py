"""Autoencoders, registered as ``autoencoder``: token sequences or feature vectors.

The ``input_dim`` option picks the mode. ``0`` (or ``None``) builds a
:class:`SequenceAutoencoderBackbone` over token ids, as in sequence
autoencoders (Dai & Le, 2015) and denoising pre-training; ``input_dim > 0``
builds a :class:`VectorAutoencoderBackbone` for float feature vectors.
Both presets live in the same dicts; a mode ignores the other mode's options.

In both modes ``pooled_output`` is the code, and it is the only path from
the encoder to the decoder.
"""

from __future__ import annotations

import keras
import keras_hub
from keras import ops

from zoo.errors import ConfigError
from zoo.hookspecs import hookimpl
from zoo.models.common import check_options, describe
from zoo.spec import ModelFamily

PRESETS = {
    "tiny": {
        "vocabulary_size": 8192, "num_layers": 1, "hidden_dim": 128, "embedding_dim": 128, "bottleneck_dim": 64,
        "dropout": 0.1, "max_sequence_length": 512, "input_dim": 0, "hidden_dims": (256, 128),
    },
    "small": {
        "vocabulary_size": 8192, "num_layers": 1, "hidden_dim": 256, "embedding_dim": 256, "bottleneck_dim": 128,
        "dropout": 0.1, "max_sequence_length": 512, "input_dim": 0, "hidden_dims": (512, 256),
    },
    "base": {
        "vocabulary_size": 8192, "num_layers": 2, "hidden_dim": 512, "embedding_dim": 512, "bottleneck_dim": 256,
        "dropout": 0.1, "max_sequence_length": 512, "input_dim": 0, "hidden_dims": (1024, 512),
    },
}


@keras.saving.register_keras_serializable(package="zoo")
class SequenceAutoencoderBackbone(keras_hub.models.Backbone):
    """LSTM sequence autoencoder whose encoder and decoder meet only at a bottleneck.

    Encoder: ``token_embedding`` (a ``keras.layers.ReversibleEmbedding``, as
    in keras-hub's backbones, initialised with standard deviation
    ``embedding_dim ** -0.5`` so that embedded vectors have about unit norm)
    → ``num_layers`` bidirectional LSTMs → mean over the positions where
    ``padding_mask`` is 1 → ``Dense(bottleneck_dim)``, linear (a tanh
    saturates on the decoder's wish for a fixed start state and stops
    passing gradient): the code, ``pooled_output``. Each row's backward LSTM reads its real tokens only:
    the row's unpadded prefix is reversed with a gather, so padding never
    leaks into the code and no boolean Keras mask is needed (cuDNN rejects
    masks of all-padding rows).

    Decoder: a left-to-right LSTM stack over the embedded
    ``decoder_token_ids`` (teacher forcing: the target shifted right, starting
    with the start token). Each decoder LSTM starts from states ``h``, ``c``
    projected from the code, which is its only view of the encoder. When
    ``hidden_dim != embedding_dim`` a Dense projects to ``embedding_dim``,
    so ``decoder_sequence_output`` can be tied to the embedding by an LM head.

    Sequence outputs are zero at padding positions.

    Args:
        vocabulary_size: number of token ids (shared by encoder and decoder).
        num_layers: LSTM layers of the encoder and of the decoder.
        hidden_dim: width of each LSTM (each direction in the encoder).
        embedding_dim: width of the embedding and of ``decoder_sequence_output``.
        bottleneck_dim: width of the code, ``pooled_output``.
        dropout: rate after the embeddings and between LSTMs.
        dtype: dtype policy of every layer; default, Keras's global policy.

    Inputs (int32, right-padded): ``token_ids`` and ``padding_mask``
    ``[batch, length]``; ``decoder_token_ids`` and ``decoder_padding_mask``
    ``[batch, decoder_length]``.
    Outputs: ``pooled_output`` ``[batch, bottleneck_dim]``,
    ``encoder_sequence_output`` ``[batch, length, 2 * hidden_dim]``,
    ``decoder_sequence_output`` ``[batch, decoder_length, embedding_dim]``.

    Example:
        >>> import numpy as np
        >>> backbone = SequenceAutoencoderBackbone(
        ...     vocabulary_size=100, num_layers=1, hidden_dim=16, embedding_dim=8, bottleneck_dim=4)
        >>> ones = np.ones((2, 5), "int32")
        >>> outputs = backbone({"token_ids": ones, "padding_mask": ones,
        ...                     "decoder_token_ids": ones[:, :3], "decoder_padding_mask": ones[:, :3]})
        >>> {name: tuple(value.shape) for name, value in outputs.items()}
        {'pooled_output': (2, 4), 'encoder_sequence_output': (2, 5, 32), 'decoder_sequence_output': (2, 3, 8)}
    """

    def __init__(self, vocabulary_size, num_layers, hidden_dim, embedding_dim, bottleneck_dim, dropout=0.1,
                 dtype=None, **kwargs):
        def lstm(name):
            return keras.layers.LSTM(hidden_dim, return_sequences=True, dtype=dtype, name=name)

        # Keras's default (uniform in ±0.05) gives inputs so small that the
        # encoder's LSTM is driven by its biases alone, the code is the same
        # for every text and the decoder learns a plain LM: unit-scale input
        # vectors (standard deviation 1/sqrt(embedding_dim)) keep it input-driven.
        self.token_embedding = keras.layers.ReversibleEmbedding(
            vocabulary_size, embedding_dim, embeddings_initializer=keras.initializers.RandomNormal(
                stddev=embedding_dim**-0.5), dtype=dtype, name="token_embedding"
        )
        self.embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.lstm_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="lstm_dropout")
        self.encoder_forward_layers = [lstm(f"encoder_forward_{i}") for i in range(num_layers)]
        self.encoder_backward_layers = [lstm(f"encoder_backward_{i}") for i in range(num_layers)]
        self.bottleneck = keras.layers.Dense(bottleneck_dim, dtype=dtype, name="bottleneck")
        self.decoder_state_h_layers = [
            keras.layers.Dense(hidden_dim, activation="tanh", dtype=dtype, name=f"decoder_state_h_{i}")
            for i in range(num_layers)
        ]
        self.decoder_state_c_layers = [
            keras.layers.Dense(hidden_dim, dtype=dtype, name=f"decoder_state_c_{i}") for i in range(num_layers)
        ]
        self.decoder_layers = [lstm(f"decoder_lstm_{i}") for i in range(num_layers)]
        self.output_projection = None
        if hidden_dim != embedding_dim:
            self.output_projection = keras.layers.Dense(embedding_dim, dtype=dtype, name="output_projection")

        token_id_input = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask_input = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        decoder_token_id_input = keras.Input(shape=(None,), dtype="int32", name="decoder_token_ids")
        decoder_padding_mask_input = keras.Input(shape=(None,), dtype="int32", name="decoder_padding_mask")

        x = self.embeddings_dropout(self.token_embedding(token_id_input))
        for i, (forward, backward) in enumerate(zip(self.encoder_forward_layers, self.encoder_backward_layers)):
            if i:
                x = self.lstm_dropout(x)
            backward_output = reverse_unpadded(backward(reverse_unpadded(x, padding_mask_input)), padding_mask_input)
            x = ops.concatenate([forward(x), backward_output], axis=-1)
        mask = ops.cast(padding_mask_input, x.dtype)[:, :, None]
        encoder_sequence_output = x * mask
        mean = ops.sum(encoder_sequence_output, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1)
        pooled_output = self.bottleneck(mean)

        y = self.embeddings_dropout(self.token_embedding(decoder_token_id_input))
        for i, decoder in enumerate(self.decoder_layers):
            if i:
                y = self.lstm_dropout(y)
            state = [self.decoder_state_h_layers[i](pooled_output), self.decoder_state_c_layers[i](pooled_output)]
            y = decoder(y, initial_state=state)
        if self.output_projection is not None:
            y = self.output_projection(y)
        decoder_sequence_output = y * ops.cast(decoder_padding_mask_input, y.dtype)[:, :, None]

        super().__init__(
            inputs={
                "token_ids": token_id_input,
                "padding_mask": padding_mask_input,
                "decoder_token_ids": decoder_token_id_input,
                "decoder_padding_mask": decoder_padding_mask_input,
            },
            outputs={
                "pooled_output": pooled_output,
                "encoder_sequence_output": encoder_sequence_output,
                "decoder_sequence_output": decoder_sequence_output,
            },
            dtype=dtype,
            **kwargs,
        )
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.embedding_dim = embedding_dim
        self.bottleneck_dim = bottleneck_dim
        self.dropout = dropout

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_layers": self.num_layers,
                "hidden_dim": self.hidden_dim,
                "embedding_dim": self.embedding_dim,
                "bottleneck_dim": self.bottleneck_dim,
                "dropout": self.dropout,
            }
        )
        return config


def reverse_unpadded(sequence, padding_mask):
    """Reverse the first ``n_b`` steps of each row, ``n_b`` the ones of right-padded ``padding_mask[b]``.

    Padding steps stay where they are; applying it twice gives the input back.

    Example:
        >>> import numpy as np
        >>> sequence = np.array([[1, 2, 3, 0], [4, 5, 6, 7]], "float32")[:, :, None]
        >>> reverse_unpadded(sequence, np.array([[1, 1, 1, 0], [1, 1, 1, 1]]))[:, :, 0].numpy().tolist()
        [[3.0, 2.0, 1.0, 0.0], [7.0, 6.0, 5.0, 4.0]]
    """
    lengths = ops.sum(padding_mask, axis=1, keepdims=True)
    steps = ops.cumsum(ops.ones_like(padding_mask), axis=1) - 1
    index = ops.where(steps < lengths, lengths - 1 - steps, steps)
    return ops.take_along_axis(sequence, index[:, :, None], axis=1)


@keras.saving.register_keras_serializable(package="zoo")
class VectorAutoencoderBackbone(keras_hub.models.Backbone):
    """Dense autoencoder for float feature vectors.

    ``features`` → ReLU Dense layers of widths ``hidden_dims`` →
    ``Dense(bottleneck_dim)``: the code, ``pooled_output`` → ReLU Dense layers
    of widths ``reversed(hidden_dims)`` → ``Dense(input_dim)``:
    ``reconstruction``. Dropout follows every hidden layer.

    Args:
        input_dim: width of ``features`` and ``reconstruction``.
        hidden_dims: widths of the encoder's hidden layers, outermost first.
        bottleneck_dim: width of the code.
        dropout: rate after each hidden layer.
        dtype: dtype policy of every layer; default, Keras's global policy.

    Inputs: float32 ``features`` ``[batch, input_dim]``.
    Outputs: ``pooled_output`` ``[batch, bottleneck_dim]`` and
    ``reconstruction`` ``[batch, input_dim]``.

    Example:
        >>> import numpy as np
        >>> backbone = VectorAutoencoderBackbone(input_dim=10, hidden_dims=(8,), bottleneck_dim=2)
        >>> outputs = backbone({"features": np.zeros((3, 10), "float32")})
        >>> tuple(outputs["pooled_output"].shape), tuple(outputs["reconstruction"].shape)
        ((3, 2), (3, 10))
    """

    def __init__(self, input_dim, hidden_dims, bottleneck_dim, dropout=0.1, dtype=None, **kwargs):
        def dense(width, name, activation=None):
            return keras.layers.Dense(width, activation=activation, dtype=dtype, name=name)

        hidden_dims = tuple(hidden_dims)
        self.encoder_layers = [dense(width, f"encoder_dense_{i}", "relu") for i, width in enumerate(hidden_dims)]
        self.bottleneck = dense(bottleneck_dim, "bottleneck")
        self.decoder_layers = [
            dense(width, f"decoder_dense_{i}", "relu") for i, width in enumerate(reversed(hidden_dims))
        ]
        self.reconstruction_dense = dense(input_dim, "reconstruction")
        self.hidden_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="hidden_dropout")

        features = keras.Input(shape=(input_dim,), dtype="float32", name="features")
        x = features
        for layer in self.encoder_layers:
            x = self.hidden_dropout(layer(x))
        pooled_output = self.bottleneck(x)
        x = pooled_output
        for layer in self.decoder_layers:
            x = self.hidden_dropout(layer(x))
        super().__init__(
            inputs={"features": features},
            outputs={"pooled_output": pooled_output, "reconstruction": self.reconstruction_dense(x)},
            dtype=dtype,
            **kwargs,
        )
        self.input_dim = input_dim
        self.hidden_dims = hidden_dims
        self.bottleneck_dim = bottleneck_dim
        self.dropout = dropout

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_dim": self.input_dim,
                "hidden_dims": list(self.hidden_dims),
                "bottleneck_dim": self.bottleneck_dim,
                "dropout": self.dropout,
            }
        )
        return config


def build(config, special_token_ids):
    """Build a sequence or vector autoencoder, by ``input_dim``, and its :class:`~zoo.spec.ModelSpec`.

    Token mode (``input_dim`` 0 or ``None``): the spec's ``hidden_dim`` is
    ``embedding_dim``, the width of ``decoder_sequence_output``. Vector mode:
    ``vocabulary_size`` and ``max_sequence_length`` are 0, ``token_embedding``
    is ``None`` and ``hidden_dim`` is ``input_dim``, the width of ``reconstruction``.

    Args:
        config: a preset of :data:`PRESETS` merged with overrides.
        special_token_ids: role to token id, passed through to the spec.

    Example:
        >>> backbone, spec = build(dict(PRESETS["tiny"], vocabulary_size=100), {"pad": 0, "start": 2})
        >>> sorted(spec.capabilities), spec.hidden_dim
        (['decoder', 'pooled'], 128)
        >>> backbone, spec = build(dict(PRESETS["tiny"], input_dim=20), {})
        >>> spec.input_names, spec.output_names, spec.vocabulary_size
        (('features',), ('pooled_output', 'reconstruction'), 0)
    """
    input_dim = config.get("input_dim") or 0
    if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 0:
        raise ConfigError(
            f"autoencoder option input_dim must be 0 (token sequences) or the width of the feature vectors, "
            f"got {input_dim!r}"
        )
    token_options = ("vocabulary_size", "num_layers", "hidden_dim", "embedding_dim", "max_sequence_length")
    check_options(FAMILY, config, positive=("bottleneck_dim",) + (() if input_dim else token_options))
    if input_dim:
        hidden_dims = config["hidden_dims"]
        if not isinstance(hidden_dims, (list, tuple)) or not all(
            isinstance(width, int) and not isinstance(width, bool) and width >= 1 for width in hidden_dims
        ):
            raise ConfigError(f"autoencoder option hidden_dims must be a list of integers >= 1, got {hidden_dims!r}")
        backbone = VectorAutoencoderBackbone(
            input_dim=input_dim, hidden_dims=hidden_dims, bottleneck_dim=config["bottleneck_dim"],
            dropout=config["dropout"],
        )
        spec = describe(
            FAMILY, backbone, special_token_ids, vocabulary_size=0, max_sequence_length=0, hidden_dim=input_dim
        )
        return backbone, spec
    backbone = SequenceAutoencoderBackbone(
        **{name: config[name] for name in ("vocabulary_size", "num_layers", "hidden_dim", "embedding_dim",
                                             "bottleneck_dim", "dropout")}
    )
    spec = describe(
        FAMILY, backbone, special_token_ids, vocabulary_size=config["vocabulary_size"],
        max_sequence_length=config["max_sequence_length"], hidden_dim=config["embedding_dim"],
    )
    return backbone, spec


FAMILY = ModelFamily(
    name="autoencoder",
    build=build,
    presets=PRESETS,
    capabilities=frozenset({"decoder", "pooled"}),
    tokenizer_kind="wordpiece",
    default_objective="denoising",
    description="LSTM sequence autoencoder through a bottleneck (or a dense one for feature vectors)",
)


@hookimpl
def zoo_register_models(register):
    """Register the ``autoencoder`` family."""
    register(FAMILY)
