"""A small real text-classification task from the embedded corpus, and scarce-label splits.

:func:`default_labeled_corpus` labels standard-library docstrings by the
package they document (``asyncio``, ``email``, ``logging``, ``xml``): the
same sources as :func:`zoo.text.corpus.default_corpus`, read with
:mod:`ast`, nothing imported or downloaded. Each package has its own
vocabulary (coroutines and event loops, headers and MIME parts, handlers
and records, elements and DOM nodes), so a small model learns it fast, yet
many docstrings are short and generic, so labels matter. It is the data of
the ``pseudo_label`` tests and of the ``bert-pseudo-label`` recipe.

:func:`scarce_labels` keeps the labels of a small stratified share of a
training set and turns the rest into unlabeled text: the self-training setting.
"""

from __future__ import annotations

import pathlib
import sysconfig

import numpy as np

from zoo.errors import ConfigError, CorpusError
from zoo.text.corpus import file_docstrings

#: Standard-library packages whose docstrings make the classes, in label order.
DEFAULT_PACKAGES = ("asyncio", "email", "logging", "xml")

_memo: dict = {}


def default_labeled_corpus(packages=DEFAULT_PACKAGES) -> tuple:
    """Standard-library docstrings labeled by their package: ``(texts, labels, class_names)``.

    ``labels[i]`` is the index in ``class_names`` (the `packages`, in
    order) of the package whose source holds ``texts[i]``. Docstrings of
    fewer than ``MIN_WORDS`` words are left out; a text found in two
    packages is dropped, one found twice in a package is kept once. The
    order is fixed (package, then path, then position in the file). With
    the default packages: about 1,100 texts in 4 classes, read in well
    under a second.

    Example:
        >>> texts, labels, class_names = default_labeled_corpus()
        >>> class_names, len(texts) == len(labels) > 800
        (['asyncio', 'email', 'logging', 'xml'], True)
        >>> sorted(set(labels))
        [0, 1, 2, 3]
    """
    packages = tuple(packages)
    if len(packages) < 2 or len(set(packages)) != len(packages):
        raise ConfigError(f"give at least two distinct standard-library packages as classes, got {list(packages)}")
    if packages not in _memo:
        root = pathlib.Path(sysconfig.get_paths()["stdlib"])
        owners: dict = {}
        for index, package in enumerate(packages):
            folder = root / package
            if not (folder / "__init__.py").is_file():
                raise CorpusError(
                    f"no standard-library package {package!r} under {root}; pick packages this Python has, "
                    f"e.g. {', '.join(DEFAULT_PACKAGES)}"
                )
            for text in _docstrings(folder):
                owners.setdefault(text, set()).add(index)
        pairs = [(text, next(iter(found))) for text, found in owners.items() if len(found) == 1]
        _memo[packages] = pairs
    pairs = _memo[packages]
    return [text for text, _ in pairs], [label for _, label in pairs], list(packages)


def _docstrings(folder: pathlib.Path) -> list:
    """Docstrings of at least MIN_WORDS words under `folder` (tests left out), in path order."""
    return [
        docstring
        for path in sorted(folder.rglob("*.py"))
        if not {"test", "tests"} & set(path.relative_to(folder).parts)
        for docstring in file_docstrings(path)
    ]


def scarce_labels(texts, labels, fraction: float, *, seed: int = 0) -> tuple:
    """Keep the labels of a stratified `fraction` of the examples: ``(labeled_texts, labeled_labels, unlabeled)``.

    Every class keeps ``max(1, round(fraction * n_class))`` labeled
    examples, drawn with `seed`; the other texts come back unlabeled. Both
    parts keep the input order.

    Example:
        >>> labeled, labeled_labels, unlabeled = scarce_labels(
        ...     [f"text {i}" for i in range(40)], [i % 2 for i in range(40)], 0.1, seed=1)
        >>> len(labeled), sorted(labeled_labels), len(unlabeled)
        (4, [0, 0, 1, 1], 36)
    """
    if len(texts) != len(labels):
        raise ConfigError(f"texts and labels differ in length ({len(texts)} and {len(labels)}); pair them up")
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction!r}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        keep[rng.choice(members, size=max(1, round(fraction * len(members))), replace=False)] = True
    texts = list(texts)
    return (
        [text for text, kept in zip(texts, keep) if kept],
        labels[keep].tolist(),
        [text for text, kept in zip(texts, keep) if not kept],
    )
