"""The plugin manager and registries: built-ins, entry points, broken plugins."""

import textwrap

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
    info = root / f"{dist}-1.2.3.dist-info"
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
