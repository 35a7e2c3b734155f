"""The ``zoo`` command.

- ``zoo list``: the registered model families, objectives and recipes, each
  with where it comes from (built-in, or the plugin distribution and version).
- ``zoo train RECIPE [--data GLOB] [--out DIR] [--set key=value ...] [--strategy NAME]``:
  train a recipe (a path or a built-in name) into ``runs/NAME``; the same
  command resumes an interrupted run (see :mod:`zoo.train`).
- ``zoo export RUN_DIR [--out PATH]``: export a run's newest checkpoint as a
  SavedModel taking raw text (default ``RUN_DIR/saved_model``).

Bad input prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys


def _list(args) -> None:
    from zoo import plugins, registry
    from zoo.errors import PluginError

    print("models:")
    for name in registry.model_names():
        try:
            entry = registry.model_entry(name)
        except PluginError as error:  # a name two plugins registered: say so, list the rest
            print(f"  {name:<14} {error}")
            continue
        family = entry.value
        print(f"  {name:<14} {', '.join(sorted(family.capabilities)):<32} {entry.origin}")
    print("objectives:")
    for name in registry.objective_names():
        try:
            entry = registry.objective_entry(name)
        except PluginError as error:
            print(f"  {name:<14} {error}")
            continue
        needs = ", ".join(sorted(entry.value.requires)) or "-"
        print(f"  {name:<14} needs {needs:<26} {entry.origin}")
    print("recipes:")
    for name, summary in _recipe_summaries():
        print(f"  {name:<22} {summary:<24} built-in")
    for failure in plugins.failed_plugins():
        print(f"broken plugin: {failure}")


def _recipe_summaries() -> list:
    """``(name, "model + objectives")`` of each built-in recipe, read without validating it."""
    import tomllib

    from zoo.recipe import builtin_recipes

    summaries = []
    for name, path in builtin_recipes().items():
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        model = data.get("model", {}).get("name", "?")
        summaries.append((name, f"{model} + {', '.join(data.get('objectives', {})) or 'default'}"))
    return summaries


def _train(args) -> None:
    from zoo.train import train

    metrics = train(args.recipe, data=args.data, out=args.out, overrides=args.set, strategy=args.strategy)
    loss = metrics["train"].get("loss")
    summary = f"loss {loss:.4f}" if loss is not None else "nothing left to train"
    print(f"zoo: {metrics['recipe']}: {metrics['steps']} steps ({summary}) in {metrics['seconds']} s")


def _export(args) -> None:
    from zoo.train import export_run

    print(f"zoo: exported {export_run(args.run_dir, args.out)}")


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``zoo`` command."""
    top = argparse.ArgumentParser(prog="zoo", description="Self-supervised language-model training.")
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list models, objectives and recipes, with their origin").set_defaults(run=_list)
    train = commands.add_parser("train", help="train a recipe; rerun the same command to resume")
    train.add_argument("recipe", help="a recipe file or a built-in recipe name (see zoo list)")
    train.add_argument("--data", help="glob of training text files (default: the recipe's, else the embedded corpus)")
    train.add_argument("--out", help="run folder (default: runs/NAME)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a recipe value, e.g. training.steps=100 (repeatable)")
    train.add_argument("--strategy", help="auto, default, one_device, mirrored, multi_worker or tpu")
    train.set_defaults(run=_train)
    export = commands.add_parser("export", help="export a run's trained model as a SavedModel taking raw text")
    export.add_argument("run_dir", help="a run folder written by zoo train")
    export.add_argument("--out", help="export folder (default: RUN_DIR/saved_model)")
    export.set_defaults(run=_export)
    return top


def main(argv=None) -> int:
    """Run the ``zoo`` command; return its exit status.

    Example:
        >>> main(["list"])  # doctest: +ELLIPSIS
        models:
        ...
        0
    """
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
