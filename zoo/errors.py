"""The exceptions zoo raises for bad input.

Every error is a :class:`ZooError`, so ``except zoo.ZooError`` catches all of
them; the command line turns one into a single line on stderr and exit
status 2. Messages name the problem and the fix.
"""

from __future__ import annotations

import difflib
import numbers
from typing import Iterable


class ZooError(Exception):
    """Base class of every error zoo raises for bad input or bad plugins."""


class UnknownNameError(ZooError, LookupError):
    """A model, objective, preset or option name that does not exist."""


class IncompatibleError(ZooError):
    """A model and an objective that cannot be trained together."""


class PluginError(ZooError):
    """A plugin that failed to import, registered a duplicate or a malformed entry."""


class ConfigError(ZooError, ValueError):
    """An argument or configuration value of the wrong kind or range."""


class CorpusError(ZooError, ValueError):
    """A corpus that is empty, too small, or not UTF-8 text."""


def unknown_name(kind: str, name: object, available: Iterable[str]) -> UnknownNameError:
    """Return an error for an unknown `name`, listing what exists and the nearest match.

    Example:
        >>> str(unknown_name("model", "brt", ["bert", "gpt"]))
        "unknown model 'brt'; did you mean 'bert'? Available: bert, gpt"
    """
    available = sorted(available)
    message = f"unknown {kind} {name!r}"
    nearest = difflib.get_close_matches(str(name), available, n=1, cutoff=0.5)
    if nearest:
        message += f"; did you mean {nearest[0]!r}?"
    else:
        message += ";"
    listing = ", ".join(available) if available else "(none installed)"
    return UnknownNameError(f"{message} Available: {listing}")


def check_integer(name: str, value, low: int, high: int | None = None, *, high_name: str = "") -> None:
    """Raise a ConfigError naming `name` unless `value` is an integer (not a bool) from `low` to `high`.

    `high_name` says what the upper bound is (``"the vocabulary size"``).

    Example:
        >>> check_integer("batch_size", 0, 1)
        Traceback (most recent call last):
        ...
        zoo.errors.ConfigError: batch_size must be a positive integer, got 0
    """
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if integer and value >= low and (high is None or value <= high):
        return
    if high is not None:
        bounds = f"an integer from {low} to {f'{high_name} ({high})' if high_name else high}"
    else:
        bounds = "a positive integer" if low == 1 else f"an integer >= {low}"
    raise ConfigError(f"{name} must be {bounds}, got {value!r}")
