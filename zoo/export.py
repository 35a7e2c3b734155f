"""SavedModel export with signatures that take raw text.

``zoo.export(model, path)`` writes a TensorFlow SavedModel whose signatures
tokenize in-graph (tensorflow-text / keras-hub ops, their lookup tables
tracked as resources):

- ``serving_default``: the first objective's endpoint (``mlm``: the top-k
  fillers of each mask token; ``clm``: the top-k next tokens and a greedy
  continuation); every objective's endpoint is also exported under its
  own name;
- ``encode``: text to ``sequence_output``, ``padding_mask`` and
  ``pooled_output`` (the backbone's own, else the mean over real tokens);
- ``token_ids``: the task model on token ids, for callers that tokenize
  themselves (what keras-hub gives).

The folder also holds ``README.md`` (how to load it) and, under
``assets.extra/``, the tokenizer's vocabulary and the resolved config. It is
written to a temporary folder and renamed into place, so an existing export
is replaced only by a complete one.

Loading needs only TensorFlow and tensorflow-text (its ops must be
registered before loading)::

    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    reloaded = tf.saved_model.load("out/saved_model")
    reloaded.signatures["serving_default"](text=tf.constant(["The [MASK] sat."]))
"""

from __future__ import annotations

import json
import pathlib

import keras
import tensorflow as tf

from zoo.errors import ConfigError, check_integer
from zoo.files import atomic_directory

TEXT_SIGNATURE = {"text": tf.TensorSpec([None], tf.string, name="text")}

_README = """# {name}

A TensorFlow SavedModel exported by zoo: {family} with {objectives}.
Its signatures take raw text (`tf.string`) and tokenize in-graph.

```python
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops; import it before loading
model = tf.saved_model.load("{name}")
print(list(model.signatures))
model.signatures["serving_default"](text=tf.constant({example!r}))
```

The same applies to TF Serving: use a build that links tensorflow-text's ops.

Signatures:
{signatures}
`assets.extra/` holds the vocabulary and `config.json`, the configuration
the model was built with. An empty string is a text with no tokens.
"""


class ServingContext:
    """What an objective's ``serve`` method may use inside an exported graph.

    Attributes:
        spec: the backbone's :class:`zoo.spec.ModelSpec`.
        sequence_length: the length examples are padded or cut to.
        top_k: how many candidates endpoints return.
        max_new_tokens: how many tokens generating endpoints append.
    """

    def __init__(self, task, *, top_k: int, max_new_tokens: int):
        self._task = task
        self.spec = task.spec
        self.sequence_length = task.sequence_length
        self.top_k = int(top_k)
        self.max_new_tokens = int(max_new_tokens)
        self._vocabulary = tf.constant([task.tokenizer.id_to_token(i) for i in range(task.spec.vocabulary_size)])

    def features(self, text) -> dict:
        """Model inputs for a batch of strings, as ``Task.predict`` makes them."""
        return self._task.preprocessor.inference_features(text)

    def model_inputs(self, features) -> dict:
        """Complete dense ``token_ids``/``padding_mask`` into the task model's inputs."""
        return self._task.preprocessor.model_inputs(features)

    def outputs(self, inputs) -> dict:
        """The task model's outputs (a dict keyed by objective) in inference mode."""
        return self._task(inputs, training=False)

    def backbone_outputs(self, inputs) -> dict:
        """The backbone's named outputs in inference mode."""
        outputs = self._task.backbone({name: inputs[name] for name in self.spec.input_names}, training=False)
        return outputs if isinstance(outputs, dict) else {"sequence_output": outputs}

    def tokenize(self, text) -> tf.RaggedTensor:
        """Token ids of each string (no start, end or padding)."""
        return self._task.tokenizer(text)

    def tokens(self, token_ids) -> tf.Tensor:
        """The vocabulary entry of each id, as strings of the same shape."""
        return tf.gather(self._vocabulary, token_ids)

    def detokenize(self, token_ids) -> tf.Tensor:
        """Text of each row of token ids."""
        return self._task.tokenizer.detokenize(token_ids)


def check_serving_options(spec, *, top_k, max_new_tokens) -> None:
    """Refuse endpoint options no export could serve: `top_k` from 1 to the vocabulary size, `max_new_tokens` >= 0.

    Example:
        >>> import zoo
        >>> check_serving_options(zoo.build("gpt", num_layers=1).spec, top_k=0, max_new_tokens=16)
        Traceback (most recent call last):
        ...
        zoo.errors.ConfigError: top_k must be an integer from 1 to the vocabulary size (8192), got 0
    """
    if spec.vocabulary_size:  # a backbone of feature vectors has no vocabulary, and no top-k endpoint
        check_integer("top_k", top_k, 1, spec.vocabulary_size, high_name="the vocabulary size")
    else:
        check_integer("top_k", top_k, 1)
    check_integer("max_new_tokens", max_new_tokens, 0)


def serving_functions(task, *, top_k: int = 5, max_new_tokens: int = 16) -> dict:
    """The exported functions, by signature name, as ``(function, input_signature)``.

    Calling them in-process gives what the reloaded SavedModel gives.

    Example:
        >>> import zoo
        >>> sorted(serving_functions(zoo.build("gpt", objective="clm", num_layers=1)))
        ['clm', 'encode', 'serving_default', 'token_ids']
    """
    check_serving_options(task.spec, top_k=top_k, max_new_tokens=max_new_tokens)
    context = ServingContext(task, top_k=top_k, max_new_tokens=max_new_tokens)
    functions = {}
    for objective in task.objectives:
        if hasattr(objective, "serve"):
            signature = objective.serving_signature() if hasattr(objective, "serving_signature") else TEXT_SIGNATURE
            function = _keyword_function(lambda inputs, o=objective: o.serve(inputs, context), signature)
            functions[objective.name] = (function, signature)
    if not functions:
        names = ", ".join(o.name for o in task.objectives)
        raise ConfigError(f"none of the objectives ({names}) has a serving endpoint; export needs one")
    functions["serving_default"] = functions[next(iter(functions))]
    functions["encode"] = (_keyword_function(lambda inputs: _encode(inputs["text"], context), TEXT_SIGNATURE),
                           TEXT_SIGNATURE)
    token_signature = {
        name: tf.TensorSpec([None, *tensor.shape[1:]], tensor.dtype, name=name) for name, tensor in task.input.items()
    }
    functions["token_ids"] = (_keyword_function(lambda inputs: dict(context.outputs(inputs)), token_signature),
                              token_signature)
    return functions


def export(model, path, *, top_k: int = 5, max_new_tokens: int = 16) -> pathlib.Path:
    """Write `model` (a task from :func:`zoo.build`) as a SavedModel taking raw text.

    Args:
        model: a :class:`zoo.task.Task`.
        path: the export folder, new or empty; an earlier export there is
            replaced once the new one is complete, and a folder holding
            anything else is refused.
        top_k: candidates returned by fill-mask and next-token endpoints.
        max_new_tokens: tokens a generating endpoint appends.

    Returns:
        The export folder.

    Example:
        >>> import tempfile, zoo
        >>> folder = export(zoo.build("bert", num_layers=1), tempfile.mkdtemp() + "/saved_model")
        >>> sorted(p.name for p in folder.iterdir())
        ['README.md', 'assets', 'assets.extra', 'fingerprint.pb', 'saved_model.pb', 'variables']
    """
    from zoo.task import Task

    if not isinstance(model, Task):
        raise ConfigError(f"zoo.export takes a model from zoo.build, got {type(model).__name__}")
    path = pathlib.Path(path)
    _check_replaceable(path)
    functions = serving_functions(model, top_k=top_k, max_new_tokens=max_new_tokens)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(model.tokenizer)
    # track() lists the Keras variables, and the endpoints capture the tf.Variables inside
    # them: two objects per weight, which the SavedModel would store (and load) twice
    # (keras-team/keras#23553). Lists of the tf.Variables themselves store each once.
    for name in ("variables", "trainable_variables", "non_trainable_variables"):
        archive.add_variable_collection(name, [variable.value for variable in getattr(model, name)])
    for name, (function, signature) in functions.items():
        archive.add_endpoint(name, function, input_signature=[signature])
    with atomic_directory(path) as folder:
        archive.write_out(str(folder), verbose=False)
        extra = folder / "assets.extra"
        model.tokenizer.save(extra / "tokenizer")
        (extra / "config.json").write_text(json.dumps(_config(model), indent=2, sort_keys=True) + "\n")
        (folder / "README.md").write_text(_readme(model, path.name, functions))
    return path


def _check_replaceable(path: pathlib.Path) -> None:
    """An export replaces an earlier export or an empty folder, never other files (a run, a checkpoint, a model)."""
    if not path.exists():
        return
    if not path.is_dir():
        raise ConfigError(f"{path} is a file, not an export folder; give a new folder path for the export")
    earlier_export = (path / "saved_model.pb").is_file() and (path / "assets.extra" / "config.json").is_file()
    if not earlier_export and any(path.iterdir()):
        raise ConfigError(
            f"{path} holds files that are not a zoo export, and an export replaces its folder whole; "
            "give a new or empty folder (an earlier export there is replaced)"
        )


def _keyword_function(body, signature):
    """A tf.function of one dict argument whose keys become the signature's input names."""

    @tf.function(input_signature=[signature], autograph=False)
    def function(inputs):
        return body(inputs)

    function.get_concrete_function()  # trace now: errors surface before anything is written
    return function


def _encode(text, context):
    inputs = context.features(text)
    outputs = context.backbone_outputs(inputs)
    # An encoder-decoder backbone (the sequence autoencoder) calls it encoder_sequence_output.
    sequence_output = outputs["sequence_output" if "sequence_output" in outputs else "encoder_sequence_output"]
    mask = tf.cast(inputs["padding_mask"], sequence_output.dtype)
    if "pooled_output" in outputs:
        pooled = outputs["pooled_output"]
    else:
        pooled = tf.reduce_sum(sequence_output * mask[..., None], axis=1) / tf.maximum(
            tf.reduce_sum(mask, axis=1, keepdims=True), 1.0
        )
    return {
        "sequence_output": tf.cast(sequence_output, tf.float32),
        "pooled_output": tf.cast(pooled, tf.float32),
        "padding_mask": inputs["padding_mask"],
    }


def _config(model) -> dict:
    return {
        "family": model.spec.family,
        "objectives": [o.name for o in model.objectives],
        "sequence_length": model.sequence_length,
        "special_token_ids": dict(model.spec.special_token_ids),
        "backbone": model.backbone.get_config(),
        "tokenizer": {"kind": model.tokenizer.kind, "vocabulary_size": model.tokenizer.vocabulary_size},
    }


def _readme(model, name, functions) -> str:
    mask_token = model.tokenizer.id_to_token(model.spec.special_token_ids["mask"])
    example = [f"The {mask_token} sat on the mat."] if "mlm" in functions else ["Once upon a time"]
    lines = []
    for signature_name, (function, signature) in functions.items():
        inputs = ", ".join(f"{k}: {v.dtype.name}{list(v.shape)}" for k, v in signature.items())
        outputs = function.get_concrete_function().structured_outputs
        lines.append(f"- `{signature_name}`({inputs}) → {', '.join(f'`{k}`' for k in sorted(outputs))}")
    return _README.format(
        name=name,
        family=model.spec.family,
        objectives=", ".join(o.name for o in model.objectives),
        example=example,
        signatures="\n".join(lines) + "\n",
    )
