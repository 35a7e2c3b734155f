"""Replacing the ``call`` of chosen layers of a model, once each: the mechanism of zoo's training fast paths.

:mod:`zoo.projections`, :mod:`zoo.fused_gelu`, :mod:`zoo.hashed_dropout`
and :mod:`zoo.head_major_attention` each give some Keras layers of a
backbone a faster ``call`` for the same arithmetic (attention also a
faster ``_compute_attention`` for the calls it hands back to Keras's).
They choose the layers and build the new ``call``; :func:`patch_layers`
walks the model, skips the layers already given that ``call`` (each fast
path marks its layers with its own attribute) and installs it on the
rest. Only the instances in the model change: the layer classes, and
every other model in the process, keep Keras's ``call``.

Keras passes ``training`` (and its other call-context arguments) only to
a ``call`` that takes it, and reads that from the signature once, when
the layer is made; :func:`patch_layers` reads it again from the
replacement, so a fast path for a layer whose own ``call`` has no
``training`` argument (``LayerNormalization``) still learns whether it
is training.
"""

from __future__ import annotations

import inspect
from typing import Callable

import keras


def patch_layers(
    model: keras.layers.Layer,
    marker: str,
    accepts: Callable[[keras.layers.Layer], bool],
    make_call: Callable[[keras.layers.Layer, Callable], Callable],
) -> int:
    """Give every layer of `model` (itself included) that `accepts` takes the ``call`` that `make_call` builds.

    `make_call(layer, keras_call)` gets the layer and its current ``call``
    and returns the replacement; Keras passes it ``training`` if it takes
    that argument. A layer patched once carries the attribute `marker` and
    is skipped on later calls. Returns the number of layers changed.

    Example:
        >>> layer = keras.layers.Dense(2)
        >>> double = lambda layer, call: (lambda inputs, **kwargs: 2 * call(inputs, **kwargs))
        >>> is_dense = lambda layer: isinstance(layer, keras.layers.Dense)
        >>> patch_layers(layer, "_doubled", is_dense, double), patch_layers(layer, "_doubled", is_dense, double)
        (1, 0)
    """
    changed = 0
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if getattr(layer, marker, False) or not accepts(layer):
            continue
        layer.call = make_call(layer, layer.call)
        layer._call_has_context_arg = {name: _accepts(layer.call, name) for name in layer._call_context_args}
        setattr(layer, marker, True)
        changed += 1
    return changed


def _accepts(function: Callable, name: str) -> bool:
    """Whether `function` takes a keyword argument `name` (by name or through ``**kwargs``)."""
    parameters = inspect.signature(function).parameters.values()
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
