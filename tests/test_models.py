"""The four built-in model families: specs, shapes, sizes, information flow, saving."""

import keras
import keras_hub
import numpy as np
import pytest

from zoo.errors import ConfigError
from zoo.models import autoencoder, bert, gpt, lstm_lm
from zoo.models.autoencoder import SequenceAutoencoderBackbone, VectorAutoencoderBackbone
from zoo.models.lstm_lm import LSTMBackbone
from zoo.spec import CAPABILITIES

SPECIAL = {"pad": 0, "unk": 1, "start": 2, "end": 3, "mask": 4}
VOCABULARY_SIZE = 300
BATCH, LENGTH, DECODER_LENGTH = 2, 16, 12

EXPECTED = {
    bert: (
        {"bidirectional", "segments", "pooled"},
        ("token_ids", "segment_ids", "padding_mask"),
        ("sequence_output", "pooled_output"),
    ),
    gpt: ({"causal"}, ("token_ids", "padding_mask"), ("sequence_output",)),
    lstm_lm: ({"causal", "pooled"}, ("token_ids", "padding_mask"), ("sequence_output", "pooled_output")),
    autoencoder: (
        {"decoder", "pooled"},
        ("token_ids", "padding_mask", "decoder_token_ids", "decoder_padding_mask"),
        ("pooled_output", "encoder_sequence_output", "decoder_sequence_output"),
    ),
}
FAMILIES = list(EXPECTED)
ids = pytest.mark.parametrize("module", FAMILIES, ids=lambda module: module.FAMILY.name)


def build(module, size="tiny", **overrides):
    config = dict(module.PRESETS[size], vocabulary_size=VOCABULARY_SIZE)
    config.update(overrides)
    return module.FAMILY.build(config, SPECIAL)


def make_inputs(input_names, seed=0):
    """Random tokens; row 1 has three padding positions at the end."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for name in input_names:
        length = DECODER_LENGTH if name.startswith("decoder_") else LENGTH
        if name.endswith("padding_mask"):
            mask = np.ones((BATCH, length), "int32")
            mask[1, -3:] = 0
            inputs[name] = mask
        elif name == "segment_ids":
            inputs[name] = np.repeat([[0] * (LENGTH // 2) + [1] * (LENGTH // 2)], BATCH, axis=0).astype("int32")
        else:
            inputs[name] = rng.integers(5, VOCABULARY_SIZE, size=(BATCH, length)).astype("int32")
    return inputs


def run(backbone, inputs):
    outputs = backbone(inputs)
    if not isinstance(outputs, dict):
        outputs = {"sequence_output": outputs}
    return {name: keras.ops.convert_to_numpy(value) for name, value in outputs.items()}


def lstm_params(input_dim, units):
    return 4 * (input_dim * units + units * units + units)


def dense_params(input_dim, units):
    return input_dim * units + units


@ids
def test_family_registers_itself(module):
    registered = []
    module.zoo_register_models(register=registered.append)
    assert registered == [module.FAMILY]
    assert set(module.FAMILY.presets) == {"tiny", "small", "base"}
    assert all(set(preset) == set(module.PRESETS["tiny"]) for preset in module.PRESETS.values())
    assert "vocabulary_size" in module.PRESETS["tiny"]


@ids
def test_tiny_preset_builds_the_promised_spec(module):
    capabilities, input_names, output_names = EXPECTED[module]
    backbone, spec = build(module)
    assert spec.family == module.FAMILY.name
    assert spec.capabilities == capabilities == module.FAMILY.capabilities
    assert spec.capabilities <= CAPABILITIES
    assert spec.vocabulary_size == VOCABULARY_SIZE
    assert dict(spec.special_token_ids) == SPECIAL
    assert spec.max_sequence_length == 512
    assert spec.hidden_dim == 128
    assert spec.input_names == input_names
    assert spec.output_names == output_names
    assert spec.token_embedding is backbone.token_embedding
    assert isinstance(spec.token_embedding, keras.layers.ReversibleEmbedding)  # what keras-hub backbones use
    assert spec.token_embedding.input_dim == VOCABULARY_SIZE
    assert spec.token_embedding.output_dim == spec.hidden_dim
    assert all(backbone.input[name].dtype == "int32" for name in input_names)


@ids
def test_output_shapes(module):
    backbone, spec = build(module)
    outputs = run(backbone, make_inputs(spec.input_names))
    assert tuple(outputs) == spec.output_names
    widths = {
        "sequence_output": (BATCH, LENGTH, spec.hidden_dim),
        "pooled_output": (BATCH, 64 if module is autoencoder else spec.hidden_dim),
        "encoder_sequence_output": (BATCH, LENGTH, 2 * 128),
        "decoder_sequence_output": (BATCH, DECODER_LENGTH, spec.hidden_dim),
    }
    for name, value in outputs.items():
        assert value.shape == widths[name], name
        assert np.all(np.isfinite(value))


@ids
def test_overrides_apply(module):
    one, _ = build(module, num_layers=1)
    two, _ = build(module, num_layers=2)
    assert len(one.weights) < len(two.weights)
    assert one.count_params() < two.count_params()
    _, spec = build(module, max_sequence_length=64)
    assert spec.max_sequence_length == 64


@pytest.mark.parametrize("module", [bert, gpt], ids=["bert", "gpt"])
def test_small_transformer_matches_keras_hub(module):
    backbone, spec = build(module, "small")
    reference_class = type(backbone)
    assert reference_class in (keras_hub.models.BertBackbone, keras_hub.models.GPT2Backbone)
    config = dict(module.PRESETS["small"], vocabulary_size=VOCABULARY_SIZE)
    assert backbone.count_params() == reference_class(**config).count_params()
    assert spec.hidden_dim == 256 and backbone.num_layers == 4 and backbone.num_heads == 4


def test_small_lstm_lm_parameter_count():
    backbone, _ = build(lstm_lm, "small")
    vocabulary, embedding, hidden = VOCABULARY_SIZE, 256, 512
    expected = (
        vocabulary * embedding
        + lstm_params(embedding, hidden)
        + lstm_params(hidden, hidden)
        + dense_params(hidden, embedding)
    )
    assert backbone.count_params() == expected


def test_small_autoencoder_parameter_count():
    backbone, _ = build(autoencoder, "small")
    vocabulary, embedding, hidden, bottleneck = VOCABULARY_SIZE, 256, 256, 128
    encoder = 2 * lstm_params(embedding, hidden) + dense_params(2 * hidden, bottleneck)
    # hidden_dim == embedding_dim: no output projection.
    decoder = 2 * dense_params(bottleneck, hidden) + lstm_params(embedding, hidden)
    assert backbone.count_params() == vocabulary * embedding + encoder + decoder


def test_small_vector_autoencoder_parameter_count():
    backbone, _ = build(autoencoder, "small", input_dim=20)
    widths = [20, 512, 256, 128, 256, 512, 20]
    assert backbone.count_params() == sum(dense_params(a, b) for a, b in zip(widths, widths[1:]))


def test_base_presets():
    for module in (bert, gpt):
        base = module.PRESETS["base"]
        assert (base["num_layers"], base["num_heads"], base["hidden_dim"], base["intermediate_dim"]) == (
            12, 12, 768, 3072
        )
    assert gpt.PRESETS["base"]["max_sequence_length"] == 1024 == gpt.PRESETS["small"]["max_sequence_length"]
    assert bert.PRESETS["base"]["num_segments"] == 2
    base = lstm_lm.PRESETS["base"]
    assert (base["num_layers"], base["hidden_dim"], base["embedding_dim"]) == (3, 1024, 512)
    assert all(module.PRESETS[size]["dropout"] == 0.1 for module in FAMILIES for size in ("tiny", "small", "base"))


def changed_positions(module, position, output="sequence_output", token_input="token_ids"):
    """Which positions of `output` move when token `position` of `token_input` changes."""
    backbone, spec = build(module)
    inputs = make_inputs(spec.input_names)
    before = run(backbone, inputs)[output]
    inputs[token_input] = inputs[token_input].copy()
    inputs[token_input][:, position] = 5 + (inputs[token_input][:, position] - 4) % (VOCABULARY_SIZE - 5)
    after = run(backbone, inputs)[output]
    return np.abs(after - before).max(axis=(0, 2)) > 1e-6


@pytest.mark.parametrize("module", [gpt, lstm_lm], ids=["gpt", "lstm_lm"])
def test_causal_families_never_look_ahead(module):
    moved = changed_positions(module, 6)
    assert not moved[:6].any()
    assert moved[6:].all()


def test_bert_looks_both_ways():
    assert changed_positions(bert, 6)[:6].all()


def test_autoencoder_decoder_is_causal():
    moved = changed_positions(autoencoder, 5, "decoder_sequence_output", "decoder_token_ids")
    assert not moved[:5].any() and moved[5:].all()


def test_lstm_pooled_output_is_the_last_real_position():
    backbone, spec = build(lstm_lm)
    outputs = run(backbone, make_inputs(spec.input_names))
    np.testing.assert_allclose(outputs["pooled_output"][0], outputs["sequence_output"][0, -1], rtol=1e-6)
    np.testing.assert_allclose(outputs["pooled_output"][1], outputs["sequence_output"][1, -4], rtol=1e-6)


def test_autoencoder_bottleneck_is_the_only_path_to_the_decoder():
    backbone, spec = build(autoencoder)
    # A model from the code and the decoder inputs alone; Keras refuses to
    # build it if the decoder output depended on any other tensor.
    code_and_decoder_inputs = [
        backbone.output["pooled_output"], backbone.input["decoder_token_ids"], backbone.input["decoder_padding_mask"]
    ]
    decoder = keras.Model(code_and_decoder_inputs, backbone.output["decoder_sequence_output"])
    first, second = make_inputs(spec.input_names, seed=0), make_inputs(spec.input_names, seed=1)
    second.update({name: first[name] for name in ("decoder_token_ids", "decoder_padding_mask")})
    for inputs in (first, second):
        outputs = run(backbone, inputs)
        replayed = decoder([outputs["pooled_output"], inputs["decoder_token_ids"], inputs["decoder_padding_mask"]])
        np.testing.assert_allclose(keras.ops.convert_to_numpy(replayed), outputs["decoder_sequence_output"],
                                   atol=1e-6)
    first_outputs, second_outputs = run(backbone, first), run(backbone, second)
    assert not np.allclose(first_outputs["pooled_output"], second_outputs["pooled_output"])
    assert not np.allclose(first_outputs["decoder_sequence_output"], second_outputs["decoder_sequence_output"])


def test_autoencoder_code_ignores_padding():
    backbone, spec = build(autoencoder)
    inputs = make_inputs(spec.input_names)
    padded = dict(inputs)
    padded["token_ids"] = np.pad(inputs["token_ids"], [(0, 0), (0, 4)], constant_values=SPECIAL["pad"])
    padded["token_ids"][1, -7:] = 9  # arbitrary tokens under the padding
    padded["padding_mask"] = np.pad(inputs["padding_mask"], [(0, 0), (0, 4)])
    before, after = run(backbone, inputs), run(backbone, padded)
    np.testing.assert_allclose(after["pooled_output"], before["pooled_output"], atol=1e-6)
    np.testing.assert_allclose(after["encoder_sequence_output"][:, :LENGTH], before["encoder_sequence_output"],
                               atol=1e-6)
    assert not after["encoder_sequence_output"][:, LENGTH:].any()
    assert not before["decoder_sequence_output"][1, -3:].any()


def test_vector_autoencoder_shapes_and_spec():
    backbone, spec = build(autoencoder, input_dim=20)
    assert isinstance(backbone, VectorAutoencoderBackbone)
    assert spec.capabilities == {"decoder", "pooled"}
    assert (spec.vocabulary_size, spec.token_embedding, spec.input_names) == (0, None, ("features",))
    assert spec.output_names == ("pooled_output", "reconstruction") and spec.hidden_dim == 20
    assert [layer.units for layer in backbone.encoder_layers] == [256, 128]
    outputs = run(backbone, {"features": np.random.default_rng(0).normal(size=(BATCH, 20)).astype("float32")})
    assert outputs["pooled_output"].shape == (BATCH, 64)
    assert outputs["reconstruction"].shape == (BATCH, 20)


BACKBONES = [
    (LSTMBackbone, dict(vocabulary_size=VOCABULARY_SIZE, num_layers=2, hidden_dim=12, embedding_dim=8)),
    (SequenceAutoencoderBackbone, dict(vocabulary_size=VOCABULARY_SIZE, num_layers=2, hidden_dim=12, embedding_dim=8,
                                       bottleneck_dim=4)),
    (VectorAutoencoderBackbone, dict(input_dim=6, hidden_dims=(10, 8), bottleneck_dim=3)),
]


def backbone_inputs(backbone):
    if "features" in backbone.input:
        return {"features": np.random.default_rng(0).normal(size=(BATCH, 6)).astype("float32")}
    return make_inputs(tuple(backbone.input))


@pytest.mark.parametrize("cls,kwargs", BACKBONES, ids=lambda value: getattr(value, "__name__", ""))
def test_backbone_round_trips_through_config(cls, kwargs):
    backbone = cls(**kwargs)
    clone = cls.from_config(backbone.get_config())
    assert clone.get_config() == backbone.get_config()
    clone.set_weights(backbone.get_weights())
    inputs = backbone_inputs(backbone)
    expected, actual = run(backbone, inputs), run(clone, inputs)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], atol=1e-6)


@pytest.mark.parametrize("cls,kwargs", BACKBONES, ids=lambda value: getattr(value, "__name__", ""))
def test_backbone_round_trips_through_keras_hub_preset(cls, kwargs, tmp_path):
    backbone = cls(**kwargs)
    backbone.save_to_preset(str(tmp_path))
    restored = keras_hub.models.Backbone.from_preset(str(tmp_path))
    assert type(restored) is cls
    inputs = backbone_inputs(backbone)
    expected, actual = run(backbone, inputs), run(restored, inputs)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], atol=1e-6)


@ids
def test_mixed_precision_computes_in_float16(module):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        backbone, spec = build(module, num_layers=1)
        outputs = run(backbone, make_inputs(spec.input_names))
    finally:
        keras.config.set_dtype_policy(previous)
    assert all(value.dtype == np.float16 and np.all(np.isfinite(value)) for value in outputs.values())
    assert spec.token_embedding.embeddings.dtype == "float32"


@pytest.mark.parametrize(
    "module,overrides,message",
    [
        (bert, {"hidden_dim": 100, "num_heads": 3}, "not divisible by num_heads"),
        (gpt, {"num_heads": 0}, "num_heads must be an integer >= 1"),
        (gpt, {"dropout": 1.5}, "dropout must be a number in"),
        (lstm_lm, {"embedding_dim": 12.5}, "embedding_dim must be an integer"),
        (lstm_lm, {"num_layers": True}, "num_layers must be an integer"),
        (autoencoder, {"input_dim": -3}, "input_dim must be 0"),
        (autoencoder, {"input_dim": 8, "hidden_dims": (16, 0)}, "hidden_dims must be a list"),
        (autoencoder, {"bottleneck_dim": 0}, "bottleneck_dim must be an integer"),
    ],
)
def test_bad_configs_raise_config_error(module, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build(module, **overrides)


def test_missing_option_is_a_config_error():
    config = dict(bert.PRESETS["tiny"])
    del config["num_segments"]
    with pytest.raises(ConfigError, match="lacks num_segments"):
        bert.FAMILY.build(config, SPECIAL)
