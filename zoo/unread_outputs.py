"""Freezing the backbone layers that only compute outputs no objective head reads.

A backbone may compute more than a task's heads read: BERT's pooler
(``pooled_output``) under masked LM alone, the autoencoder's decoder
(``reconstruction``) under pseudo-labeling. No loss reaches those
weights, so Keras gives them no gradient and warns, at every build of
the training step, that "gradients do not exist" for them and asks
whether a loss is missing, which here none is.

:func:`freeze_unread_outputs` reads the Keras graph: which of the
backbone's outputs the heads read, and which backbone layers those
outputs are computed from. Every other backbone layer with weights is
made non-trainable, unless it shares a weight with a layer that is read.
Training is the same (those weights never changed), the warning goes, the
optimizer keeps no moments for them, and ``model.summary()`` counts as
trainable what trains. The backbone itself is unchanged otherwise: its
outputs, config, presets and exports keep every layer.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import keras


def freeze_unread_outputs(backbone: keras.Model, outputs: Mapping, heads: Mapping) -> list[str]:
    """Make the layers of `backbone` that feed only outputs `heads` never read non-trainable.

    `outputs` maps the backbone's output names to the symbolic tensors its
    call returned in the task's graph, and `heads` holds the task's output
    tensors. Returns the names of the layers frozen, in the backbone's
    order. A backbone whose outputs are all read, or none of them, is left
    as it is.

    Example:
        >>> token_ids = keras.Input((4,), dtype="int32", name="token_ids")
        >>> sequence = keras.layers.Embedding(10, 8, name="embedding")(token_ids)
        >>> pooled = keras.layers.Dense(8, name="pooler")(sequence[:, 0])
        >>> backbone = keras.Model(token_ids, {"sequence_output": sequence, "pooled_output": pooled})
        >>> inputs = keras.Input((4,), dtype="int32")
        >>> outputs = backbone(inputs)
        >>> head = keras.layers.Dense(10, name="lm_head")(outputs["sequence_output"])
        >>> freeze_unread_outputs(backbone, outputs, {"lm": head})
        ['pooler']
        >>> [weight.path for weight in backbone.trainable_weights]
        ['embedding/embeddings']
    """
    by_id = {id(tensor): name for name, tensor in outputs.items()}
    _, reached = _upstream(heads.values(), stop=set(by_id))
    read = [by_id[tensor_id] for tensor_id in reached]
    if not read or len(read) == len(outputs):
        return []
    # Only a backbone with several outputs gets here, and those are a dict (see zoo.task.Task).
    computing, _ = _upstream([backbone.output[name] for name in read], stop=set())
    read_weights = {id(weight) for operation in computing for weight in getattr(operation, "trainable_weights", ())}
    frozen = []
    for layer in backbone.layers:
        weights = layer.trainable_weights
        if weights and not any(id(weight) in read_weights for weight in weights):
            layer.trainable = False
            frozen.append(layer.name)
    return frozen


def _upstream(tensors: Iterable, stop: set[int]) -> tuple[list, set[int]]:
    """The operations that compute `tensors`, back to the inputs or to tensors whose id is in `stop`.

    Returns those operations and the ids of the `stop` tensors reached.
    """
    operations, reached, seen = {}, set(), set()
    pending = list(tensors)
    while pending:
        tensor = pending.pop()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        if id(tensor) in stop:
            reached.add(id(tensor))
            continue
        history = getattr(tensor, "_keras_history", None)
        if history is None or history.operation is None:
            continue
        operations[id(history.operation)] = history.operation
        pending.extend(history.operation._inbound_nodes[history.node_index].input_tensors)
    return list(operations.values()), reached
