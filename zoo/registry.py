"""Registries of model families and objectives, filled by calling the hooks.

Each plugin's hook is called with a ``register`` callback bound to that
plugin, so every entry knows where it came from. A malformed entry, or a
hook that raises, is reported naming the plugin and its distribution and
skipped; a name registered twice becomes an error when it is looked up,
naming both plugins; every other name keeps working.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from typing import Any, Callable

from zoo import plugins
from zoo.errors import IncompatibleError, PluginError, unknown_name
from zoo.objective import Objective
from zoo.spec import CAPABILITIES, ModelFamily


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered model family or objective and its :class:`~zoo.plugins.Origin`."""

    name: str
    value: Any
    origin: plugins.Origin


@dataclasses.dataclass
class _Table:
    kind: str
    entries: dict
    conflicts: dict

    def get(self, name: str) -> Entry:
        if name in self.conflicts:
            holders = " and ".join(str(origin) for origin in self.conflicts[name])
            raise PluginError(
                f"{self.kind} {name!r} is registered by both {holders}; uninstall one of them, "
                f"or set {plugins.DISABLE_AUTOLOAD_ENV}=1 to use only the built-ins"
            )
        if name not in self.entries:
            error = unknown_name(self.kind, name, self.entries)
            failures = plugins.failed_plugins()
            if failures:
                error.args = (error.args[0] + ". Note: " + "; ".join(map(str, failures)),)
            raise error
        return self.entries[name]


_cache: dict = {"manager": None, "tables": {}}


def _check_family(family: object) -> str | None:
    if not isinstance(family, ModelFamily):
        return f"registered {family!r}, which is not a zoo.spec.ModelFamily"
    if not isinstance(family.name, str) or not family.name.isidentifier():
        return f"registered a model family whose name {family.name!r} is not an identifier"
    unknown = set(family.capabilities) - CAPABILITIES
    if unknown:
        return f"model family {family.name!r} declares unknown capabilities {sorted(unknown)}"
    if not family.presets or not callable(family.build):
        return f"model family {family.name!r} has no presets or no callable build"
    return None


def _check_objective(objective: object) -> str | None:
    if not (inspect.isclass(objective) and issubclass(objective, Objective)):
        return f"registered {objective!r}, which is not a subclass of zoo.Objective"
    if inspect.isabstract(objective):
        missing = ", ".join(sorted(objective.__abstractmethods__))
        return f"objective {objective.__name__} does not implement {missing}"
    name = getattr(objective, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        return f"objective {objective.__name__} has no identifier `name` (got {name!r})"
    unknown = set(objective.requires) - CAPABILITIES
    if unknown:
        return f"objective {name!r} requires unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITIES)}"
    return None


def _collect(kind: str, hook_name: str, check: Callable[[object], str | None]) -> _Table:
    manager = plugins.plugin_manager()
    table = _Table(kind, {}, {})
    for impl in getattr(manager.hook, hook_name).get_hookimpls():
        origin = plugins.origin_of(impl.plugin)

        def register(value, origin=origin):
            problem = check(value)
            if problem:
                raise PluginError(problem)
            name = value.name
            if name in table.conflicts:
                table.conflicts[name].append(origin)
            elif name in table.entries:
                table.conflicts[name] = [table.entries.pop(name).origin, origin]
            else:
                table.entries[name] = Entry(name, value, origin)

        try:
            impl.function(register=register)
        except Exception as error:  # one broken plugin must not hide the others
            warnings.warn(
                f"plugin {origin.plugin!r} ({origin}) failed in {hook_name}: {error}. "
                f"Fix or uninstall it; zoo goes on without its {kind}s.",
                plugins.PluginLoadWarning,
                stacklevel=3,
            )
    return table


def _table(kind: str) -> _Table:
    manager = plugins.plugin_manager()
    if _cache["manager"] is not manager:  # plugins were (re)loaded
        _cache.update(manager=manager, tables={})
    tables = _cache["tables"]
    if kind not in tables:
        if kind == "model":
            tables[kind] = _collect("model", "zoo_register_models", _check_family)
        else:
            tables[kind] = _collect("objective", "zoo_register_objectives", _check_objective)
    return tables[kind]


def model_names() -> list:
    """Sorted names of every registered model family.

    Example:
        >>> "bert" in model_names()
        True
    """
    table = _table("model")
    return sorted([*table.entries, *table.conflicts])


def objective_names() -> list:
    """Sorted names of every registered objective.

    Example:
        >>> "mlm" in objective_names()
        True
    """
    table = _table("objective")
    return sorted([*table.entries, *table.conflicts])


def model_entry(name: str) -> Entry:
    """The :class:`Entry` of model family `name`; unknown names list what exists."""
    return _table("model").get(name)


def objective_entry(name: str) -> Entry:
    """The :class:`Entry` of objective `name`; unknown names list what exists."""
    return _table("objective").get(name)


def check_compatible(family: ModelFamily, objective: type) -> None:
    """Raise :class:`IncompatibleError` if `family` lacks a capability `objective` needs.

    Example:
        >>> check_compatible(model_entry("gpt").value, objective_entry("mlm").value)
        Traceback (most recent call last):
        ...
        zoo.errors.IncompatibleError: gpt is causal; mlm needs bidirectional; try bert
    """
    missing = sorted(set(objective.requires) - set(family.capabilities))
    if not missing:
        return
    has = ", ".join(sorted(family.capabilities)) or "no capabilities"
    fitting = [
        name
        for name, entry in sorted(_table("model").entries.items())
        if set(objective.requires) <= set(entry.value.capabilities)
    ]
    advice = f"try {', '.join(fitting)}" if fitting else "no installed model has them"
    raise IncompatibleError(
        f"{family.name} is {has}; {objective.name} needs {', '.join(missing)}; {advice}"
    )
