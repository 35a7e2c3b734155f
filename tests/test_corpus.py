"""The embedded default corpus, the held-out split and reading text files."""

import gzip
import json
import random
import statistics

import pytest

from zoo.errors import ConfigError, CorpusError, UnknownNameError
from zoo.text import corpus
from zoo.text.corpus import default_corpus, read_documents, split_held_out


def test_default_corpus_is_a_real_corpus():
    documents = default_corpus()
    words = [len(document.split()) for document in documents]
    assert len(documents) > 5000
    assert min(words) >= 3
    assert 8 <= statistics.median(words) <= 30
    assert sum(len(document.encode("utf-8")) for document in documents) > 1_000_000
    assert all(document == document.strip() for document in documents)
    assert any(document.startswith("JSON (JavaScript Object Notation)") for document in documents)


def test_default_corpus_is_deterministic_and_cached_on_disk(tmp_path, monkeypatch):
    session_documents = default_corpus()
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))

    assert default_corpus() == session_documents  # harvested again, in the same order
    [cache_file] = (tmp_path / "corpus").iterdir()
    assert json.loads(gzip.decompress(cache_file.read_bytes())) == session_documents

    def no_harvest(root):
        raise AssertionError("the cache should have been read")

    monkeypatch.setattr(corpus, "_harvest_docstrings", no_harvest)
    monkeypatch.setattr(corpus, "_memo", {})  # as in a new process
    assert default_corpus() == session_documents


def test_unreadable_corpus_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(corpus, "_harvest_docstrings", lambda root: ["one two three"])
    default_corpus()
    [cache_file] = (tmp_path / "corpus").iterdir()
    cache_file.write_bytes(b"not gzip")
    monkeypatch.setattr(corpus, "_memo", {})

    assert default_corpus() == ["one two three"]
    assert json.loads(gzip.decompress(cache_file.read_bytes())) == ["one two three"]


def test_held_out_split_is_stable_and_disjoint():
    documents = default_corpus()
    train, held_out = split_held_out(documents)
    assert len(train) + len(held_out) == len(documents)
    assert set(train).isdisjoint(held_out)
    assert 0.005 * len(documents) < len(held_out) < 0.02 * len(documents)

    shuffled = documents[:]
    random.Random(0).shuffle(shuffled)
    assert set(split_held_out(shuffled)[1]) == set(held_out)  # independent of order and neighbours
    assert split_held_out(held_out[:5])[1] == held_out[:5]
    # The hash is part of the contract: the same documents are held out everywhere.
    assert split_held_out([f"document {i}" for i in range(40)], 0.25)[1] == [
        "document 11", "document 15", "document 26", "document 27", "document 28", "document 36", "document 37",
    ]


def test_held_out_fraction_is_checked():
    with pytest.raises(ConfigError, match="fraction"):
        split_held_out(["a b c"], fraction=1.5)


def test_paragraphs_and_lines(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"Second file.\r\n")
    (tmp_path / "a.txt").write_text("  First paragraph,\nstill first.\n \t \nSecond one.\n\n\n\nThird.  \n")

    assert read_documents(str(tmp_path / "*.txt")) == [
        "First paragraph,\nstill first.", "Second one.", "Third.", "Second file.",
    ]
    assert read_documents([tmp_path / "a.txt"], split="line") == [
        "First paragraph,", "still first.", "Second one.", "Third.",
    ]


def test_a_list_of_globs_and_paths_is_read_in_order_once(tmp_path):
    (tmp_path / "x.txt").write_text("x one\n")
    (tmp_path / "y.md").write_text("\ufeffy one\n")  # a UTF-8 byte order mark is not text
    documents = read_documents([str(tmp_path / "y.md"), str(tmp_path / "*.txt"), tmp_path / "x.txt"])
    assert documents == ["y one", "x one"]


def test_unknown_split_mode():
    with pytest.raises(UnknownNameError, match="did you mean 'line'"):
        read_documents("whatever.txt", split="lines")


def test_no_matching_file_names_the_pattern(tmp_path):
    pattern = str(tmp_path / "*.txt")
    with pytest.raises(CorpusError, match="no file matches") as error:
        read_documents(pattern)
    assert pattern in str(error.value)


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(CorpusError, match=r"is a folder; pass a glob"):
        read_documents(tmp_path)


def test_non_utf8_file_names_file_and_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café au lait".encode("latin-1"))
    with pytest.raises(CorpusError, match="not valid UTF-8") as error:
        read_documents(path)
    message = str(error.value)
    assert str(path) in message and "offset 3" in message and "convert it to UTF-8" in message


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"text\x00\x01\x02")
    with pytest.raises(CorpusError, match="NUL byte at offset 4") as error:
        read_documents(path)
    assert str(path) in str(error.value)


def test_corpus_without_documents(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text(" \n\t\n")
    with pytest.raises(CorpusError, match="no documents"):
        read_documents(str(tmp_path / "*.txt"))


def test_missing_standard_library_sources_are_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(corpus, "_harvest_docstrings", lambda root: [])
    with pytest.raises(CorpusError, match="no standard-library sources"):
        default_corpus()
