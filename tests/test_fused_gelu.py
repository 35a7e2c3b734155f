"""zoo.fused_gelu: the compiled bias + GELU trains exactly as Keras's does, on zoo's models only, while training only."""

import keras
import pytest
import tensorflow as tf

import zoo
from zoo.fused_gelu import bias_gelu, fuse_gelu

BERT = dict(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=12,
            dropout=0.0)


@pytest.mark.parametrize("approximate", [True, False])
@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-5), ("bfloat16", 2e-2)])
def test_bias_gelu_equals_keras_gelu_and_its_gradients(approximate, dtype, tolerance, assert_function_matches):
    x = tf.cast(3 * tf.random.stateless_normal((64, 24), seed=[1, 2]), dtype)
    bias = tf.cast(tf.random.stateless_normal((24,), seed=[3, 4]), dtype)
    assert_function_matches(
        lambda x, bias: bias_gelu(x, bias, approximate),
        lambda x, bias: keras.activations.gelu(tf.cast(x, "float32") + tf.cast(bias, "float32"),
                                               approximate=approximate),
        [x, bias], tolerance,
    )


def test_fused_backbone_trains_as_keras_hub_and_keeps_its_config_and_inference_path(
        bert_twins, bert_inputs, compiled_functions, assert_backbones_train_alike):
    reference, fused = bert_twins(**BERT)
    assert fuse_gelu(fused) == BERT["num_layers"]  # each feed-forward block's intermediate Dense
    assert fuse_gelu(fused) == 0
    assert fused.get_config() == reference.get_config()
    assert not any(getattr(layer, "_zoo_fused_gelu", False) for layer in reference._flatten_layers())

    assert_backbones_train_alike(reference, fused, bert_inputs)

    # Inference runs Keras's own ops: no XLA-compiled function ends up in a traced serving graph.
    assert not compiled_functions(fused, bert_inputs, training=False)
    assert compiled_functions(fused, bert_inputs, training=True)


def test_zoo_tasks_fuse_their_backbone_gelu_and_still_learn():
    keras.utils.set_random_seed(0)
    model = zoo.build("gpt", objective="clm", num_layers=2, hidden_dim=16, intermediate_dim=32, num_heads=2,
                      sequence_length=16)
    fused = [layer.name for layer in model.backbone._flatten_layers() if getattr(layer, "_zoo_fused_gelu", False)]
    assert len(fused) == 2
    texts = ["the cat sat on the mat and the dog sat on the log"] * 64
    history = model.fit(texts, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
