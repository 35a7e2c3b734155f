"""The exceptions zoo raises for bad input.

Every error is a :class:`ZooError`, so ``except zoo.ZooError`` catches all of
them; the command line turns one into a single line on stderr and exit
status 2. Messages name the problem and the fix.
"""

from __future__ import annotations

import difflib
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
