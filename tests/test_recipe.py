"""Recipe files: parsing, validation with suggestions, overrides, built-ins."""

import tomllib

import pytest

import zoo
from zoo.errors import ConfigError, UnknownNameError
from zoo.recipe import builtin_recipes, load_recipe, parse_recipe

REQUIRED_BUILTINS = {"bert-mlm", "bert-mlm-nsp", "gpt-clm", "lstm-clm", "autoencoder-denoising", "bert-pseudo-label"}


def test_the_required_built_in_recipes_ship_with_the_package():
    assert REQUIRED_BUILTINS <= set(builtin_recipes())


@pytest.mark.parametrize("name", sorted(REQUIRED_BUILTINS))
def test_built_in_recipes_validate_when_their_objectives_are_installed(name):
    data = tomllib.loads(builtin_recipes()[name].read_text(encoding="utf-8"))
    missing = set(data["objectives"]) - set(zoo.objectives())
    if missing:
        pytest.skip(f"objective(s) {sorted(missing)} not registered yet")
    recipe = load_recipe(name)
    assert recipe.name == name
    assert list(recipe.objectives) == list(data["objectives"])
    assert recipe.model.name in zoo.models()


def test_overrides_are_toml_values_on_dotted_keys():
    recipe = load_recipe("bert-mlm", [
        "training.steps=7", "model.num_layers=1", "training.learning_rate=3e-4",
        "objectives.mlm.mask_rate=0.2", "init_from=runs/x", "export.enabled=false",
    ])
    assert recipe.training.steps == 7
    assert recipe.model.overrides == {"num_layers": 1}
    assert recipe.training.learning_rate == pytest.approx(3e-4)
    assert recipe.objectives["mlm"]["mask_rate"] == pytest.approx(0.2)
    assert recipe.init_from == "runs/x"  # not a TOML value: taken as a string
    assert recipe.export.enabled is False


def test_a_resolved_recipe_reads_back_equal():
    recipe = load_recipe("gpt-clm", ["model.dropout=0.0", "training.seed=3"])
    assert parse_recipe(recipe.to_toml()) == recipe


@pytest.mark.parametrize("override, message", [
    ("training.step=3", "unknown key 'training.step'; did you mean 'steps'?"),
    ("model.num_layer=1", "unknown key 'model.num_layer'; did you mean 'num_layers'?"),
    ("objectives.mlm.mask_rat=0.3", "unknown key 'objectives.mlm.mask_rat'; did you mean 'mask_rate'?"),
    ("trainin.steps=3", "unknown key 'trainin'; did you mean 'training'?"),
])
def test_unknown_keys_name_the_nearest_valid_key(override, message):
    with pytest.raises(UnknownNameError, match="bert-mlm: " + message.replace("?", r"\?")):
        load_recipe("bert-mlm", [override])


@pytest.mark.parametrize("override, message", [
    ('training.steps="ten"', "training.steps must be an integer, got a string 'ten'"),
    ("training.batch_size=2.5", "training.batch_size must be an integer, got a number 2.5"),
    ("model.dropout=true", "model.dropout must be a number, got a boolean True"),
    ("export.enabled=1", "export.enabled must be true or false, got an integer 1"),
    ("training=3", "training must be a table"),
    ("training.epochs=2", "set exactly one of training.steps and training.epochs"),
    ("training.precision=fp8", "training.precision must be one of 'auto'"),
    ("training.batch_size=0", "training.batch_size must be a positive integer"),
    ("model.vocabulary_size=100", "set the vocabulary size as tokenizer.vocabulary_size"),
    ("training.seed=-5", "training.seed must be between 0 and 2"),
    ("training.seed=4294967296", "training.seed must be between 0 and 2"),
    ("export.top_k=0", "export.top_k must be a positive integer, got 0"),
    ("export.max_new_tokens=-1", "export.max_new_tokens must be >= 0, got -1"),
    ('name="."', "with at least one letter or digit"),
])
def test_wrong_types_and_values_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_recipe("bert-mlm", [override])


def test_unknown_recipes_models_and_files():
    with pytest.raises(UnknownNameError, match="unknown recipe 'bert-mlmm'; did you mean 'bert-mlm'"):
        load_recipe("bert-mlmm")
    with pytest.raises(UnknownNameError, match="unknown model 'brt'"):
        parse_recipe('[model]\nname = "brt"\n[training]\nsteps = 1')
    with pytest.raises(ConfigError, match="no recipe file 'missing/recipe.toml'"):
        load_recipe("missing/recipe.toml")
    with pytest.raises(ConfigError, match="model.name is missing"):
        parse_recipe("[training]\nsteps = 1")


def test_bad_files_are_config_errors(tmp_path):
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('description = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_recipe(latin1)
    broken = tmp_path / "broken.toml"
    broken.write_text("[model\nname = 'bert'\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_recipe(broken)


def test_a_recipe_file_is_named_after_its_file_unless_it_names_itself(tmp_path):
    path = tmp_path / "my-run.toml"
    path.write_text('[model]\nname = "gpt"\n[objectives.clm]\n[training]\nsteps = 2\n')
    assert load_recipe(path).name == "my-run"
