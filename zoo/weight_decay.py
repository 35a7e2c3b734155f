"""Which weights an optimizer leaves out of weight decay, as JSON values, and back.

Keras's optimizer configs leave out what ``exclude_from_weight_decay`` was
told, so an AdamW restored from its config alone would decay the biases
and norms it was told to spare. A saved task keeps the exclusions beside
the optimizer: the name patterns as given, the excluded variables by their
place among the task's trainable variables (layer names, and so variable
paths, may differ from one process to the next).
"""

from __future__ import annotations

import keras


def weight_decay_exclusions(optimizer, variables) -> dict | None:
    """``{"var_names": [...], "variable_indices": [...]}``: what `optimizer` excludes among `variables`; None if nothing.

    Example:
        >>> import keras
        >>> optimizer = keras.optimizers.AdamW(weight_decay=0.01)
        >>> optimizer.exclude_from_weight_decay(var_names=["bias"])
        >>> weight_decay_exclusions(optimizer, [])
        {'var_names': ['bias'], 'variable_indices': []}
    """
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        return None
    pattern = getattr(optimizer, "_exclude_from_weight_decay_pattern", None)
    excluded = getattr(optimizer, "_exclude_from_weight_decay", set())
    indices = [index for index, variable in enumerate(variables) if optimizer._var_key(variable) in excluded]
    if pattern is None and not indices:
        return None
    return {"var_names": [] if pattern is None else [pattern.pattern], "variable_indices": indices}


def exclude_again(optimizer, exclusions: dict | None, variables) -> None:
    """Tell an unbuilt `optimizer` the :func:`weight_decay_exclusions` it was saved with, among `variables`.

    Example:
        >>> import keras
        >>> optimizer = keras.optimizers.AdamW(weight_decay=0.01)
        >>> exclude_again(optimizer, {"var_names": ["bias"], "variable_indices": []}, [])
        >>> optimizer._use_weight_decay(keras.Variable(0.0, name="bias"))
        False
    """
    if not exclusions:
        return
    optimizer.exclude_from_weight_decay(
        var_list=[variables[index] for index in exclusions["variable_indices"]], var_names=exclusions["var_names"]
    )
