"""zoo: self-supervised language-model training on Keras 3 and TensorFlow.

``import zoo`` is cheap; TensorFlow loads on first use of the API.

Example:
    >>> import zoo
    >>> zoo.models()
    ['autoencoder', 'bert', 'gpt', 'lstm_lm']
    >>> model = zoo.build("bert", objective="mlm")  # doctest: +SKIP
"""

import importlib

# The subpackages are imported before the functions of the same name are
# defined: importing a subpackage later would rebind `zoo.models`.
import zoo.models as _model_modules  # noqa: F401
import zoo.objectives as _objective_modules  # noqa: F401
from zoo.errors import ZooError
from zoo.hookspecs import hookimpl

_LAZY = {
    "build": "zoo.builder",
    "Objective": "zoo.objective",
    "ModelFamily": "zoo.spec",
    "ModelSpec": "zoo.spec",
}


def models() -> list:
    """Names of the registered model families, built-in and from plugins."""
    from zoo import registry

    return registry.model_names()


def objectives() -> list:
    """Names of the registered objectives, built-in and from plugins."""
    from zoo import registry

    return registry.objective_names()


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


__all__ = ["ModelFamily", "ModelSpec", "Objective", "ZooError", "build", "hookimpl", "models", "objectives"]
