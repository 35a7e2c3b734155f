"""The two benchmark corpora, both made from zoo's embedded default corpus.

- ``short``: the default corpus itself, one standard-library docstring per
  document (median about 15 words): mostly padding for a model that pads
  each document to the sequence length.
- ``long``: the same docstrings, in the same (source path) order, joined
  greedily into documents of at least ``min_words`` words. The default
  corpus lists the docstrings of one module consecutively (module, then its
  classes and functions), so a long document is a run of consecutive
  docstrings, mostly of one module, separated by blank lines.

Both corpora hold the same text; a held-out share of the docstrings (by a
stable hash, :func:`zoo.text.corpus.split_held_out`) is kept out of both.
"""

from __future__ import annotations

import statistics

from zoo.text.corpus import default_corpus, split_held_out

#: Words of a long document, at least.
LONG_DOCUMENT_WORDS = 400


def docstrings(limit: int | None = None, held_out_fraction: float = 0.05) -> tuple:
    """``(train, held_out)`` docstrings of the default corpus, the first `limit` of it if given.

    Example:
        >>> train, held_out = docstrings(limit=200)
        >>> len(train) + len(held_out)
        200
    """
    documents = default_corpus()
    if limit is not None:
        documents = documents[:limit]
    return split_held_out(documents, held_out_fraction)


def join_documents(documents, min_words: int = LONG_DOCUMENT_WORDS) -> list:
    """Consecutive `documents` joined by blank lines into documents of at least `min_words` words.

    The last document may be shorter: it holds what is left.

    Example:
        >>> join_documents(["a b", "c d e", "f", "g h"], min_words=4)
        ['a b\\n\\nc d e', 'f\\n\\ng h']
    """
    joined, pieces, words = [], [], 0
    for document in documents:
        pieces.append(document)
        words += len(document.split())
        if words >= min_words:
            joined.append("\n\n".join(pieces))
            pieces, words = [], 0
    if pieces:
        joined.append("\n\n".join(pieces))
    return joined


def corpora(limit: int | None = None, long_words: int = LONG_DOCUMENT_WORDS) -> dict:
    """The benchmark corpora: ``{"short": ..., "long": ..., "held_out": ...}`` lists of documents.

    ``held_out`` holds long documents made of the held-out docstrings.

    Example:
        >>> texts = corpora(limit=300, long_words=100)
        >>> median_words(texts["short"]) < 30 < median_words(texts["long"])
        True
    """
    train, held_out = docstrings(limit)
    return {
        "short": train,
        "long": join_documents(train, long_words),
        "held_out": join_documents(held_out, long_words),
    }


def median_words(documents) -> float:
    """Median number of whitespace-separated words of `documents`.

    Example:
        >>> median_words(["a", "a b c", "a b c d e"])
        3
    """
    return statistics.median(len(document.split()) for document in documents)


def describe(documents) -> dict:
    """Size figures of a corpus: documents, words, median words, megabytes of UTF-8.

    Example:
        >>> describe(["a b", "c"])["words"]
        3
    """
    return {
        "documents": len(documents),
        "words": sum(len(document.split()) for document in documents),
        "median_words": median_words(documents),
        "megabytes": round(sum(len(document.encode("utf-8")) for document in documents) / 1e6, 3),
    }
