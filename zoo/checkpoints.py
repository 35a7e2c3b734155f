"""Step checkpoints of a run: model, optimizer and data position, written atomically.

Each checkpoint is a folder ``step-NNNNNNNN/`` holding a
``tf.train.Checkpoint`` of the task, its optimizer, its random generators'
states and its objectives' training state (:meth:`zoo.Objective.build_state`),
so a resumed run continues exactly as an uninterrupted one, plus ``state.json``
(``step``, ``data_position``: batches of the training stream consumed). It
is written under a temporary name and renamed into place, so a folder with
a ``step-`` name is always complete; a crash while writing leaves the last
good one as the newest. The newest ``keep`` are kept.

In a multi-worker run every worker writes (saving may involve collective
ops), but only the chief into the run: the others write to a temporary
folder that is deleted at once.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import tempfile

import tensorflow as tf

from zoo.errors import ConfigError
from zoo.files import atomic_directory, atomic_write_text

STATE_FILE = "state.json"
_NAME = re.compile(r"step-(\d{8,})")


def checkpoint_steps(folder) -> list:
    """The steps of the complete checkpoints in `folder`, oldest first.

    Example:
        >>> checkpoint_steps("/nonexistent")
        []
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return []
    steps = []
    for path in folder.iterdir():
        match = _NAME.fullmatch(path.name)
        if match and (path / STATE_FILE).is_file():
            steps.append(int(match.group(1)))
    return sorted(steps)


class RunCheckpoints:
    """Save and restore the checkpoints of one run.

    Args:
        folder: the run's ``checkpoints/`` folder.
        model: the task; its ``optimizer`` must be built before restoring.
        keep: how many checkpoints to keep.
        chief: whether this process writes into `folder`.

    Example:
        >>> import tempfile, zoo
        >>> task = zoo.build("gpt", objective="clm", num_layers=1)
        >>> task.optimizer.build(task.trainable_variables)
        >>> checkpoints = RunCheckpoints(tempfile.mkdtemp(), task, keep=1)
        >>> checkpoints.save(step=3, data_position=3)
        >>> checkpoints.restore()
        {'step': 3, 'data_position': 3}
    """

    def __init__(self, folder, model, *, keep: int = 2, chief: bool = True):
        self.folder = pathlib.Path(folder)
        self.keep = int(keep)
        self.chief = chief
        weights = {id(weight) for weight in model.weights}
        # Keras's SeedGenerator states (dropout's): without them a resumed run would draw its
        # first steps' dropout masks again. Tracking reaches the weights only.
        random_states = [variable for variable in model.variables if id(variable) not in weights]
        states = model.objective_states  # a teacher's moving averages, say (zoo.Objective.build_state)
        extra = {"objective_states": tf.train.Checkpoint(**states)} if states else {}
        self._checkpoint = tf.train.Checkpoint(
            model=model, optimizer=model.optimizer, random_states=random_states, **extra
        )

    def save(self, *, step: int, data_position: int) -> None:
        """Write the checkpoint of `step` (atomically), then drop all but the newest ``keep``."""
        state = json.dumps({"step": int(step), "data_position": int(data_position)}) + "\n"
        if not self.chief:
            scratch = tempfile.mkdtemp(prefix="zoo-worker-checkpoint-")
            try:
                self._checkpoint.write(str(pathlib.Path(scratch) / "ckpt"))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return
        with atomic_directory(self.folder / f"step-{int(step):08d}") as folder:
            self._checkpoint.write(str(folder / "ckpt"))
            atomic_write_text(folder / STATE_FILE, state)
        for old in checkpoint_steps(self.folder)[: -self.keep]:
            shutil.rmtree(self.folder / f"step-{old:08d}", ignore_errors=True)

    def restore(self) -> dict | None:
        """Load the newest checkpoint into the model and optimizer; its state, or None if there is none."""
        steps = checkpoint_steps(self.folder)
        if not steps:
            return None
        folder = self.folder / f"step-{steps[-1]:08d}"
        try:
            state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
            state = {"step": int(state["step"]), "data_position": int(state["data_position"])}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise _damaged(folder, steps, error) from None
        status = _read(self._checkpoint, folder, steps)
        try:
            status.assert_existing_objects_matched()
        except AssertionError as error:
            raise ConfigError(
                f"checkpoint {folder} does not fit this model ({_first_line(error)}); "
                "train into a new --out folder or delete the run's checkpoints"
            ) from None
        return state

    def remove_partial_writes(self) -> None:
        """Delete temporary folders left by a process killed while writing a checkpoint."""
        if self.chief and self.folder.is_dir():
            for path in self.folder.glob(".step-*.tmp"):
                shutil.rmtree(path, ignore_errors=True)


def restore_model(folder, model) -> int:
    """Load the model weights (not the optimizer) of the newest checkpoint in `folder`; its step.

    Example:
        >>> restore_model("/nonexistent", None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        zoo.errors.ConfigError: no checkpoint in /nonexistent; ...
    """
    steps = checkpoint_steps(folder)
    if not steps:
        raise ConfigError(f"no checkpoint in {folder}; train the run first (zoo train RECIPE --out RUN_DIR)")
    path = pathlib.Path(folder) / f"step-{steps[-1]:08d}" / "ckpt"
    status = _read(tf.train.Checkpoint(model=model), path.parent, steps)
    status.expect_partial()  # the optimizer's slots are not needed
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        raise ConfigError(f"checkpoint {path} does not fit this model ({_first_line(error)})") from None
    return steps[-1]


def _read(checkpoint: tf.train.Checkpoint, folder: pathlib.Path, steps: list):
    """``checkpoint.read`` of the checkpoint in `folder`; a ConfigError if its files cannot be read."""
    try:
        return checkpoint.read(str(folder / "ckpt"))
    except (OSError, IndexError, tf.errors.OpError) as error:  # files cut short, garbled or missing
        raise _damaged(folder, steps, error) from None
    except ValueError as error:
        raise ConfigError(  # the shapes of another model
            f"checkpoint {folder} does not fit this model ({_first_line(error)}); "
            "train into a new --out folder or delete the run's checkpoints"
        ) from None


def _damaged(folder: pathlib.Path, steps: list, error) -> ConfigError:
    """The error for a checkpoint whose files are cut short or garbled (a partial copy, a full disk)."""
    if len(steps) > 1:
        fix = f"delete {folder} to go on from the checkpoint of step {steps[-2]}"
    else:
        fix = "it is the run's only checkpoint: delete it to start the run again"
    return ConfigError(f"checkpoint {folder} cannot be read ({_first_line(error)}); {fix}")


def _first_line(error) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
