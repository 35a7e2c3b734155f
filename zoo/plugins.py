"""The plugin manager: built-ins first, then entry points of group ``zoo``.

Built-in model families and objectives are registered exactly like
third-party plugins; core code never imports them by name anywhere else.
Loading is lazy and happens once, on the first registry lookup.

Set ``ZOO_DISABLE_PLUGIN_AUTOLOAD=1`` to skip entry points (built-ins still load).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import threading
import warnings

import pluggy

from zoo import hookspecs
from zoo.errors import PluginError

#: Modules registered before any entry point, in this order.
DEFAULT_PLUGINS = (
    "zoo.models.bert",
    "zoo.models.gpt",
    "zoo.models.lstm_lm",
    "zoo.models.autoencoder",
    "zoo.objectives.mlm",
    "zoo.objectives.clm",
    "zoo.objectives.denoising",
    "zoo.objectives.nsp",
    "zoo.objectives.pseudo_label",
)

ENTRY_POINT_GROUP = "zoo"
DISABLE_AUTOLOAD_ENV = "ZOO_DISABLE_PLUGIN_AUTOLOAD"


class PluginLoadWarning(UserWarning):
    """A plugin failed to load; zoo goes on without it."""


@dataclasses.dataclass(frozen=True)
class Origin:
    """Where a registered entry came from.

    Attributes:
        plugin: the plugin's name in the manager (module or entry-point name).
        distribution: the installed distribution that provides it, or
            ``None`` for built-ins.
        version: that distribution's version, or ``None``.
    """

    plugin: str
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.distribution is None:
            return "built-in"
        return f"{self.distribution} {self.version} (plugin {self.plugin!r})"


@dataclasses.dataclass(frozen=True)
class FailedPlugin:
    """A plugin that could not be loaded, and why."""

    origin: Origin
    error: str

    def __str__(self) -> str:
        return f"plugin {self.origin.plugin!r} from {self.origin.distribution} failed to load: {self.error}"


class _State:
    lock = threading.Lock()
    manager: pluggy.PluginManager | None = None
    origins: dict = {}
    failed: list = []


def plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, loading plugins on first use.

    Example:
        >>> pm = plugin_manager()
        >>> "zoo.models.bert" in {name for name, _ in pm.list_name_plugin()}
        True
    """
    with _State.lock:
        if _State.manager is None:
            _State.manager = _load()
        return _State.manager


def origin_of(plugin: object) -> Origin:
    """The :class:`Origin` of a registered plugin object."""
    plugin_manager()
    return _State.origins[id(plugin)]


def failed_plugins() -> list:
    """The plugins that failed to load, as :class:`FailedPlugin` records."""
    plugin_manager()
    return list(_State.failed)


def reset() -> None:
    """Forget the loaded plugins; the next lookup loads them again (for tests)."""
    with _State.lock:
        _State.manager = None
        _State.origins = {}
        _State.failed = []


def _load() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        module = importlib.import_module(module_name)
        manager.register(module, name=module_name)
        _State.origins[id(module)] = Origin(module_name)
    if not os.environ.get(DISABLE_AUTOLOAD_ENV):
        for entry_point in _entry_points():
            _load_entry_point(manager, entry_point)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        raise PluginError(
            f"{error}. Hook implementations must match a spec in zoo.hookspecs "
            f"(zoo_register_models, zoo_register_objectives); rename or remove it, "
            f"or set {DISABLE_AUTOLOAD_ENV}=1 to skip third-party plugins."
        ) from None
    return manager


def _entry_points():
    seen = set()
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = (entry_point.name, entry_point.value)
        if key not in seen:  # a distribution visible twice on sys.path
            seen.add(key)
            yield entry_point


def _load_entry_point(manager: pluggy.PluginManager, entry_point) -> None:
    dist = entry_point.dist
    origin = Origin(
        entry_point.name,
        dist.metadata["Name"] if dist else "an unknown distribution",
        dist.version if dist else "?",
    )
    if manager.get_plugin(entry_point.name) is not None or manager.is_blocked(entry_point.name):
        return
    try:
        plugin = entry_point.load()
        manager.register(plugin, name=entry_point.name)
    except Exception as error:  # a broken plugin must not take the others down
        _fail(origin, f"{type(error).__name__}: {error}")
        return
    unknown = _unknown_hooks(manager, plugin)
    if unknown:
        manager.unregister(plugin)
        known = ", ".join(sorted(h for h in dir(hookspecs) if h.startswith("zoo_")))
        _fail(origin, f"it implements hooks that do not exist: {', '.join(unknown)} (known: {known})")
        return
    _State.origins[id(plugin)] = origin


def _unknown_hooks(manager: pluggy.PluginManager, plugin: object) -> list:
    unknown = []
    for name in sorted(vars(manager.hook)):
        caller = getattr(manager.hook, name)
        if isinstance(caller, pluggy.HookCaller) and not caller.has_spec():
            if any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls()):
                unknown.append(name)
    return unknown


def _fail(origin: Origin, reason: str) -> None:
    failure = FailedPlugin(origin, reason)
    _State.failed.append(failure)
    warnings.warn(
        f"{failure}. Fix or uninstall {origin.distribution}; zoo goes on without it.",
        PluginLoadWarning,
        stacklevel=5,
    )
