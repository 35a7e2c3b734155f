"""The plugin manager and registries: built-ins, entry points, broken plugins."""

import textwrap

import keras
import numpy as np
import pytest

import zoo
from zoo import plugins, registry
from zoo.errors import IncompatibleError, PluginError, UnknownNameError

GOOD_OBJECTIVE = """
    import tensorflow as tf
    import zoo

    class TokenCopy(zoo.Objective):
        name = "token_copy"
        requires = frozenset({"bidirectional"})
        def prepare(self, features, spec, seed):
            return features, features["token_ids"], tf.cast(features["padding_mask"], "float32")
        def build_head(self, outputs, inputs, spec):
            return spec.token_embedding(outputs["sequence_output"], reverse=True)

    @zoo.hookimpl
    def zoo_register_objectives(register):
        register(TokenCopy)
"""


def install_fake_distribution(root, monkeypatch, dist, module, source, entry_name=None):
    """Make `dist` an installed distribution with a `zoo` entry point to `module`."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"  # as wheels name it: importlib.metadata reads the name up to "-"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{entry_name or module} = {module}\n")
    monkeypatch.syspath_prepend(str(root))


@pytest.fixture
def fresh_plugins(monkeypatch):
    monkeypatch.delenv(plugins.DISABLE_AUTOLOAD_ENV, raising=False)
    plugins.reset()
    yield
    plugins.reset()


def test_builtins_are_registered_as_plugins():
    assert zoo.models() == ["autoencoder", "bert", "gpt", "lstm_lm"]
    assert {"mlm", "clm"} <= set(zoo.objectives())
    assert str(registry.objective_entry("mlm").origin) == "built-in"
    assert registry.objective_entry("mlm").origin.plugin == "zoo.objectives.mlm"


def test_unknown_names_list_what_exists_and_suggest_the_nearest():
    with pytest.raises(UnknownNameError, match=r"unknown model 'brt'; did you mean 'bert'\? Available: autoencoder, bert, gpt, lstm_lm"):
        zoo.build("brt")
    with pytest.raises(UnknownNameError, match=r"unknown objective 'mln'; did you mean 'mlm'\?"):
        zoo.build("bert", objective="mln")
    with pytest.raises(UnknownNameError, match=r"unknown bert option 'hiden_dim'; did you mean 'hidden_dim'\?"):
        zoo.build("bert", objective="mlm", hiden_dim=64)
    with pytest.raises(UnknownNameError, match=r"unknown bert size 'huge'.*Available: base, small, tiny"):
        zoo.build("bert", size="huge")
    with pytest.raises(UnknownNameError, match=r"unknown mlm parameter 'mask_prob'.*did you mean 'mask_rate'"):
        zoo.build("bert", objective={"mlm": {"mask_prob": 0.2}})


def test_incompatible_pair_names_the_capability_and_the_models_that_fit():
    with pytest.raises(IncompatibleError, match=r"^gpt is causal; mlm needs bidirectional; try bert$"):
        zoo.build("gpt", objective="mlm")
    with pytest.raises(IncompatibleError, match=r"bert is .*; clm needs causal; try gpt, lstm_lm"):
        zoo.build("bert", objective="clm")
    assert issubclass(IncompatibleError, zoo.ZooError)


def test_third_party_objective_is_loaded_with_its_origin(tmp_path, monkeypatch, fresh_plugins):
    install_fake_distribution(tmp_path, monkeypatch, "zoo-token-copy", "zoo_token_copy", GOOD_OBJECTIVE)
    assert "token_copy" in zoo.objectives()
    origin = registry.objective_entry("token_copy").origin
    assert (origin.distribution, origin.version) == ("zoo-token-copy", "1.2.3")
    assert "zoo-token-copy 1.2.3" in str(origin)


def test_autoload_can_be_disabled(tmp_path, monkeypatch, fresh_plugins):
    install_fake_distribution(tmp_path, monkeypatch, "zoo-token-copy", "zoo_token_copy", GOOD_OBJECTIVE)
    monkeypatch.setenv(plugins.DISABLE_AUTOLOAD_ENV, "1")
    assert "token_copy" not in zoo.objectives()
    assert "mlm" in zoo.objectives()


def test_plugin_that_raises_on_import_is_named_and_others_keep_working(tmp_path, monkeypatch, fresh_plugins):
    install_fake_distribution(tmp_path, monkeypatch, "zoo-broken", "zoo_broken", "raise RuntimeError('boom')\n")
    with pytest.warns(plugins.PluginLoadWarning, match=r"plugin 'zoo_broken' from zoo-broken failed to load: RuntimeError: boom"):
        names = zoo.objectives()
    assert {"mlm", "clm"} <= set(names)
    with pytest.raises(UnknownNameError, match=r"Note: plugin 'zoo_broken' from zoo-broken failed to load"):
        registry.objective_entry("broken_thing")


def test_duplicate_name_is_an_error_naming_both_plugins(tmp_path, monkeypatch, fresh_plugins):
    source = GOOD_OBJECTIVE.replace('name = "token_copy"', 'name = "mlm"')
    install_fake_distribution(tmp_path, monkeypatch, "zoo-dup", "zoo_dup", source)
    with pytest.raises(PluginError, match=r"objective 'mlm' is registered by both built-in and zoo-dup 1.2.3 \(plugin 'zoo_dup'\)"):
        zoo.build("bert", objective="mlm")
    assert registry.objective_entry("clm").value.name == "clm"


def test_malformed_objective_is_reported_and_skipped(tmp_path, monkeypatch, fresh_plugins):
    source = """
        import zoo
        class Half(zoo.Objective):
            name = "half"
        @zoo.hookimpl
        def zoo_register_objectives(register):
            register(Half)
    """
    install_fake_distribution(tmp_path, monkeypatch, "zoo-half", "zoo_half", source)
    with pytest.warns(plugins.PluginLoadWarning, match=r"'zoo_half' \(zoo-half 1.2.3.*does not implement build_head, prepare"):
        names = zoo.objectives()
    assert "half" not in names and "mlm" in names


def test_unknown_hook_is_reported(tmp_path, monkeypatch, fresh_plugins):
    source = """
        import zoo
        @zoo.hookimpl
        def zoo_register_losses(register):
            pass
    """
    install_fake_distribution(tmp_path, monkeypatch, "zoo-typo", "zoo_typo", source)
    with pytest.warns(plugins.PluginLoadWarning, match=r"zoo-typo.*hooks that do not exist: zoo_register_losses"):
        assert "mlm" in zoo.objectives()


MODEL_FAMILY = """
    import keras
    import keras_hub
    import zoo
    from zoo.spec import ModelFamily, ModelSpec

    def build(config, special_token_ids):
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
        embedding = keras_hub.layers.ReversibleEmbedding(
            config["vocabulary_size"], config["hidden_dim"], name="token_embedding")
        tokens = embedding(token_ids)
        mask = keras.ops.expand_dims(keras.ops.cast(padding_mask, tokens.dtype), -1)
        # Bidirectional: every position also sees the mean of the whole text.
        context = keras.ops.sum(tokens * mask, axis=1, keepdims=True) / keras.ops.maximum(
            keras.ops.sum(mask, axis=1, keepdims=True), 1.0)
        sequence_output = keras.layers.Dense(config["hidden_dim"], activation="gelu")(tokens + context)
        backbone = keras.Model({"token_ids": token_ids, "padding_mask": padding_mask},
                               {"sequence_output": sequence_output}, name="bag_of_words")
        spec = ModelSpec(
            family="bag_of_words", capabilities=FAMILY.capabilities, vocabulary_size=config["vocabulary_size"],
            special_token_ids=dict(special_token_ids), max_sequence_length=config["max_sequence_length"],
            hidden_dim=config["hidden_dim"], token_embedding=embedding,
            input_names=("token_ids", "padding_mask"), output_names=("sequence_output",))
        return backbone, spec

    FAMILY = ModelFamily(
        name="bag_of_words", build=build,
        presets={"tiny": {"vocabulary_size": 8192, "hidden_dim": 32, "max_sequence_length": 64}},
        capabilities=frozenset({"bidirectional"}), tokenizer_kind="wordpiece", default_objective="mlm",
        description="each token plus the mean of the text")

    @zoo.hookimpl
    def zoo_register_models(register):
        register(FAMILY)
"""


def test_third_party_model_family_trains_and_is_listed_with_its_origin(tmp_path, monkeypatch, fresh_plugins, capsys):
    from zoo import cli, testing
    from zoo.text.corpus import default_corpus

    install_fake_distribution(tmp_path, monkeypatch, "zoo-bag-of-words", "zoo_bag_of_words", MODEL_FAMILY)
    assert "bag_of_words" in zoo.models()
    origin = registry.model_entry("bag_of_words").origin
    assert (origin.distribution, origin.version, origin.plugin) == ("zoo-bag-of-words", "1.2.3", "zoo_bag_of_words")
    result = testing.run_task_test("bag_of_words", None, texts=default_corpus()[:120], sequence_length=32,
                                   batch_size=16, epochs=2, mirrored=False)
    assert sorted(result["predictions"]) == ["mlm"]  # the family's default objective
    with pytest.raises(IncompatibleError, match=r"bag_of_words is bidirectional; clm needs causal"):
        zoo.build("bag_of_words", objective="clm")
    assert cli.main(["list"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["bag_of_words"]]
    assert line.split()[1:] == ["bidirectional", "zoo-bag-of-words", "1.2.3", "(plugin", "'zoo_bag_of_words')"]


def test_a_saved_task_with_a_plugin_objective_loads_only_where_the_plugin_is_installed(
        tmp_path, monkeypatch, fresh_plugins):
    install_fake_distribution(tmp_path, monkeypatch, "zoo-token-copy", "zoo_token_copy", GOOD_OBJECTIVE)
    model = zoo.build("bert", objective={"token_copy": {"loss_weight": 0.5}}, num_layers=1, sequence_length=16)
    model.save(tmp_path / "task.keras")
    loaded = keras.saving.load_model(tmp_path / "task.keras")
    assert [(o.name, o.loss_weight) for o in loaded.objectives] == [("token_copy", 0.5)]

    monkeypatch.setenv(plugins.DISABLE_AUTOLOAD_ENV, "1")
    plugins.reset()
    with pytest.raises(UnknownNameError, match=r"cannot rebuild the saved task: unknown objective 'token_copy'.*"
                                               r"Install the plugin that provides it"):
        keras.saving.load_model(tmp_path / "task.keras")


def test_with_three_broken_plugins_installed_a_good_plugin_and_the_builtins_still_train(
        tmp_path, monkeypatch, fresh_plugins, capsys):
    from zoo import cli

    install_fake_distribution(tmp_path, monkeypatch, "zoo-token-copy", "zoo_token_copy", GOOD_OBJECTIVE)
    install_fake_distribution(tmp_path, monkeypatch, "zoo-broken", "zoo_broken_import",
                              "raise ImportError('no numpy 3')\n")
    install_fake_distribution(tmp_path, monkeypatch, "zoo-dup", "zoo_dup_clm",
                              GOOD_OBJECTIVE.replace('"token_copy"', '"clm"').replace("TokenCopy", "Clm"))
    install_fake_distribution(tmp_path, monkeypatch, "zoo-not-objective", "zoo_not_objective", """
        import zoo
        @zoo.hookimpl
        def zoo_register_objectives(register):
            register(object())
    """)
    with pytest.warns(plugins.PluginLoadWarning) as caught:
        names = zoo.objectives()
    messages = " | ".join(str(w.message) for w in caught)
    assert "plugin 'zoo_broken_import' from zoo-broken failed to load: ImportError: no numpy 3" in messages
    assert ("'zoo_not_objective' (zoo-not-objective 1.2.3 (plugin 'zoo_not_objective')) failed in "
            "zoo_register_objectives: registered <object") in messages
    assert {"mlm", "token_copy", "clm"} <= set(names)
    with pytest.raises(PluginError, match=r"objective 'clm' is registered by both built-in and zoo-dup 1.2.3"):
        zoo.build("gpt", objective="clm")
    model = zoo.build("bert", objective=["mlm", "token_copy"], num_layers=1, sequence_length=16)
    history = model.fit(zoo.text.corpus.default_corpus()[:32], batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["mlm_loss"][0]) and np.isfinite(history["token_copy_loss"][0])
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "clm            objective 'clm' is registered by both built-in and zoo-dup 1.2.3" in out
    assert "broken plugin: plugin 'zoo_broken_import' from zoo-broken failed to load" in out
    assert "zoo-token-copy 1.2.3" in out
