"""Hook specifications: the reference for plugin authors.

A plugin is a module (or any object) with functions marked ``@zoo.hookimpl``
whose names match the specs below. Built-in model families and objectives
are plugins of exactly this kind; a third-party distribution makes its
module known through an entry point of group ``zoo``::

    # pyproject.toml of the plugin distribution
    [project.entry-points.zoo]
    my_objective = "my_package.my_module"

Each hook receives a ``register`` callback rather than returning values, so
that new keyword arguments can be added to the hooks without breaking
existing plugins.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "zoo"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def zoo_register_models(register):
    """Register model families.

    Call ``register(family)`` once per :class:`zoo.spec.ModelFamily`. A name
    registered by two plugins is an error naming both.

    Example:
        >>> from zoo import hookimpl
        >>> @hookimpl
        ... def zoo_register_models(register):
        ...     register(MY_FAMILY)  # a zoo.spec.ModelFamily
    """


@hookspec
def zoo_register_objectives(register):
    """Register objectives.

    Call ``register(objective_class)`` once per subclass of
    :class:`zoo.Objective`; its ``name`` attribute is the registry name.

    Example:
        >>> from zoo import hookimpl
        >>> @hookimpl
        ... def zoo_register_objectives(register):
        ...     register(MyObjective)  # a zoo.Objective subclass
    """
