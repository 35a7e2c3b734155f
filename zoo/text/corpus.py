"""Documents to train on: the embedded default corpus and plain text files.

The default corpus exists on every machine without a download: the
docstrings of the running Python's standard library, read from its source
with :mod:`ast` (nothing is imported). Harvesting takes a few seconds, so
the result is cached under :func:`zoo.files.cache_dir`, per Python version.
"""

from __future__ import annotations

import ast
import glob
import gzip
import hashlib
import json
import os
import pathlib
import sys
import sysconfig
import threading
import zlib

from zoo.errors import ConfigError, CorpusError, unknown_name
from zoo.files import atomic_write_bytes, cache_dir

#: Folders of the standard library whose docstrings are left out.
SKIPPED_FOLDERS = frozenset({"site-packages", "dist-packages", "test", "tests", "idlelib", "tkinter", "lib2to3"})
#: Shortest docstring, in words, that counts as a document.
MIN_WORDS = 3
#: Bump when the harvesting rules change, so stale caches are not read.
CORPUS_FORMAT = 2
SPLIT_MODES = ("line", "paragraph")

_DOCSTRING_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_memo: dict = {}
_memo_lock = threading.Lock()


def default_corpus() -> list:
    """The embedded default corpus: standard-library docstrings, one per document.

    About 6,800 documents (1.5 MB, median 15 words) in a fixed order; read
    from the cache after the first call, also in other processes.

    Example:
        >>> documents = default_corpus()
        >>> len(documents) > 1000 and all(len(d.split()) >= 3 for d in documents)
        True
    """
    version = sys.version_info
    path = cache_dir() / "corpus" / (
        f"stdlib-docstrings-v{CORPUS_FORMAT}-{sys.implementation.name}"
        f"{version.major}.{version.minor}.{version.micro}.json.gz"
    )
    with _memo_lock:
        if path not in _memo:
            documents = _read_cache(path)
            if documents is None:
                root = pathlib.Path(sysconfig.get_paths()["stdlib"])
                documents = _harvest_docstrings(root)
                if not documents:
                    raise CorpusError(
                        f"no standard-library sources (.py files) under {root} to build the default corpus from; "
                        "install them or pass your own documents"
                    )
                atomic_write_bytes(path, gzip.compress(json.dumps(documents).encode("utf-8"), mtime=0))
            _memo[path] = tuple(documents)
        return list(_memo[path])


def _read_cache(path: pathlib.Path):
    """The cached documents, or None when the cache is missing or unreadable."""
    try:
        documents = json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, EOFError, ValueError, zlib.error):
        return None
    if isinstance(documents, list) and documents and all(isinstance(d, str) for d in documents):
        return documents
    return None


def _harvest_docstrings(root: pathlib.Path) -> list:
    """Docstrings of at least MIN_WORDS words of every module under `root`, in path order."""
    paths = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in SKIPPED_FOLDERS]
        paths.extend(pathlib.Path(folder, name) for name in files if name.endswith(".py"))
    return [docstring for path in sorted(paths) for docstring in file_docstrings(path)]


def file_docstrings(path) -> list:
    """Docstrings of at least MIN_WORDS words in the Python source at `path`, in ``ast.walk`` order.

    A file that does not parse gives none; nothing is imported.

    Example:
        >>> import tempfile
        >>> source = pathlib.Path(tempfile.mkdtemp()) / "m.py"
        >>> _ = source.write_text("'''A module about cats.'''\\ndef f():\\n    'Too short.'\\n")
        >>> file_docstrings(source)
        ['A module about cats.']
    """
    try:
        tree = ast.parse(pathlib.Path(path).read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return []
    docstrings = []
    for node in ast.walk(tree):
        if isinstance(node, _DOCSTRING_OWNERS):
            docstring = (ast.get_docstring(node) or "").strip()
            if len(docstring.split()) >= MIN_WORDS:
                docstrings.append(docstring)
    return docstrings


def split_held_out(documents, fraction: float = 0.01) -> tuple:
    """Split `documents` into ``(train, held_out)`` by a stable hash of each text.

    A document lands on the same side in every process and whatever the
    order or the other documents; about `fraction` of them are held out.

    Example:
        >>> train, held_out = split_held_out([f"document number {i}" for i in range(1000)], 0.1)
        >>> len(train) + len(held_out), 50 < len(held_out) < 150
        (1000, True)
    """
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"fraction must be between 0 and 1, got {fraction!r}")
    train, held_out = [], []
    for document in documents:
        digest = hashlib.blake2b(document.encode("utf-8"), digest_size=8).digest()
        (held_out if int.from_bytes(digest, "big") < fraction * 2**64 else train).append(document)
    return train, held_out


def read_documents(pattern_or_paths, *, split: str = "paragraph") -> list:
    """Documents from UTF-8 text files: a glob, a path, or a list of either.

    ``split="paragraph"`` makes one document per blank-line-separated
    paragraph, ``split="line"`` one per non-empty line; documents are
    stripped of surrounding whitespace and empty ones dropped.

    Example:
        >>> import tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.txt").write_text("First line.\\nSame paragraph.\\n\\nSecond one.\\n")
        >>> read_documents(str(folder / "*.txt"))
        ['First line.\\nSame paragraph.', 'Second one.']
        >>> read_documents(folder / "a.txt", split="line")
        ['First line.', 'Same paragraph.', 'Second one.']
    """
    if split not in SPLIT_MODES:
        raise unknown_name("split mode", split, SPLIT_MODES)
    paths = _expand(pattern_or_paths)
    documents = []
    for path in paths:
        text = _read_utf8(path)
        if split == "line":
            pieces = text.splitlines()
        else:
            pieces = _paragraphs(text)
        documents.extend(piece.strip() for piece in pieces if piece.strip())
    if not documents:
        names = ", ".join(str(path) for path in paths[:3]) + (", ..." if len(paths) > 3 else "")
        raise CorpusError(f"no documents in {names}: the files hold only whitespace; give files with text")
    return documents


def _expand(pattern_or_paths) -> list:
    """Sorted, distinct file paths of a glob, a path, or a list of either."""
    items = [pattern_or_paths] if isinstance(pattern_or_paths, (str, os.PathLike)) else list(pattern_or_paths)
    if not items:
        raise CorpusError("no files given: pass a glob like 'data/*.txt', a path, or a list of them")
    paths = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise ConfigError(f"expected a path or a glob string, got {item!r}")
        pattern = os.path.expanduser(os.fspath(item))
        is_glob = any(character in pattern for character in "*?[")
        matches = sorted(glob.glob(pattern, recursive=True)) if is_glob else [pattern]
        files = [pathlib.Path(match) for match in matches if os.path.isfile(match)]
        if not files:
            if len(matches) == 1 and os.path.isdir(matches[0]):
                raise CorpusError(f"{pattern} is a folder; pass a glob of its files, e.g. '{pattern}/*.txt'")
            raise CorpusError(f"no file matches {pattern!r}; check the path or the glob")
        paths.extend(files)
    return list(dict.fromkeys(paths))


def _read_utf8(path: pathlib.Path) -> str:
    """The text of `path`; CorpusError for binary or non-UTF-8 content."""
    data = path.read_bytes()
    nul = data.find(b"\x00")
    if nul >= 0:
        raise CorpusError(f"{path} looks binary (NUL byte at offset {nul}); give plain UTF-8 text files")
    bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
    try:
        return data[len(bom):].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = len(bom) + error.start
        raise CorpusError(
            f"{path} is not valid UTF-8 (byte 0x{data[offset]:02x} at offset {offset}); "
            "convert it to UTF-8, e.g. `iconv -f latin1 -t utf-8`"
        ) from None


def _paragraphs(text: str) -> list:
    """Blank-line-separated paragraphs of `text`, lines joined by newlines."""
    paragraphs, lines = [], []
    for line in text.splitlines():
        if line.strip():
            lines.append(line)
        elif lines:
            paragraphs.append("\n".join(lines))
            lines = []
    if lines:
        paragraphs.append("\n".join(lines))
    return paragraphs
