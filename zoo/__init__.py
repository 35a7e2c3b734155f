"""zoo: self-supervised language-model training on Keras 3 and TensorFlow.

Example:
    >>> import zoo
    >>> zoo.models()
    ['autoencoder', 'bert', 'gpt', 'lstm_lm']
    >>> model = zoo.build("bert", objective="mlm")  # doctest: +SKIP
"""

# Before anything can place a tensor on the CPU: TensorFlow reads its
# allocator choice once, when the CPU device is first used (zoo.allocator).
from zoo import allocator as _allocator

_allocator.prefer_caching_allocator()

# Subpackages and modules that share a name with a function of the API are
# imported first; the `from` imports below then bind the functions. (Importing
# such a module later would not rebind the name: it is already loaded.)
import zoo.models as _model_modules  # noqa: F401
import zoo.objectives as _objective_modules  # noqa: F401
from zoo import registry as _registry
from zoo.builder import build
from zoo.errors import ZooError
from zoo.export import export
from zoo.hookspecs import hookimpl
from zoo.objective import Objective
from zoo.spec import ModelFamily, ModelSpec
from zoo.train import train


def models() -> list:
    """Names of the registered model families, built-in and from plugins."""
    return _registry.model_names()


def objectives() -> list:
    """Names of the registered objectives, built-in and from plugins."""
    return _registry.objective_names()


__all__ = ["ModelFamily", "ModelSpec", "Objective", "ZooError", "build", "export", "hookimpl", "models", "objectives",
           "train"]
