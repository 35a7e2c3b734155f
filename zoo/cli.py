"""The ``zoo`` command.

``zoo list`` prints the registered model families and objectives with
where each comes from (built-in, or the plugin distribution and version).
Bad input prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys


def _list(args) -> None:
    from zoo import plugins, registry

    print("models:")
    for name in registry.model_names():
        entry = registry.model_entry(name)
        family = entry.value
        print(f"  {name:<14} {', '.join(sorted(family.capabilities)):<32} {entry.origin}")
    print("objectives:")
    for name in registry.objective_names():
        entry = registry.objective_entry(name)
        needs = ", ".join(sorted(entry.value.requires)) or "-"
        print(f"  {name:<14} needs {needs:<26} {entry.origin}")
    for failure in plugins.failed_plugins():
        print(f"broken plugin: {failure}")


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``zoo`` command."""
    top = argparse.ArgumentParser(prog="zoo", description="Self-supervised language-model training.")
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list models and objectives, with their origin").set_defaults(run=_list)
    return top


def main(argv=None) -> int:
    """Run the ``zoo`` command; return its exit status.

    Example:
        >>> main(["list"])  # doctest: +ELLIPSIS
        models:
        ...
        0
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parser().parse_args(argv)
    from zoo.errors import ZooError

    try:
        args.run(args)
    except ZooError as error:
        print(f"zoo: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
