"""Tokenizers: in-graph ids equal the trainer's, special tokens, saving, caching."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from zoo.errors import ConfigError, CorpusError, UnknownNameError
from zoo.spec import SPECIAL_TOKEN_ROLES
from zoo.text import tokenizer as tokenizer_module
from zoo.text.corpus import default_corpus, split_held_out
from zoo.text.tokenizer import KINDS, Tokenizer, default_tokenizer, resolve_tokenizer, train_tokenizer

VOCABULARY_SIZE = 2000

# Text on which the graph's and the trainer's Unicode handling could part.
TRICKY = [
    "Straße STRASSE ẞ ΟΔΟΣ σοφός ς Ꮳ ꮳ İstanbul ǅ Ⅻ ﬁne ＦＵＬＬ　ｗｉｄｔｈ",
    "Crème brûlée, naïve café — “quoted” ‘text’… ① ² ½ ℌ 𝐁𝐨𝐥𝐝",
    "한국어 텍스트 ᄀ ᅡ 日本語のテキスト 中文文本 漢字 ｶﾀｶﾅ",
    "tabs\tand\x0bvertical\x0cforms\r\nline\u2028separator\u00a0nbsp\u2009thin\u3000ideographic\u1680ogham",
    "zero\u200bwidth soft\u00adhyphen joiner\u200dx bidi\u202eabc\u202c NUL\x00byte \x7f\x85",
    "trailing spaces   \n\n    indented\n\t\tmixed \n \n",
    "Devanagari ६ digit and ĴAŬDO ĴA ĴB ĴC <Ĵ> noncharacters \ufdd0\ufdd4\uffff",
    "Vithkuqi 𐕰𐖗 Glagolitic Ⱟ modifier 𐞁 segmented 🯱🯲 Reiwa ㋿",
    "a" * 150 + " " + "é" * 60 + " " + "я" * 120 + " " + "ไทย" * 40,
    "x[MASK]y [CLS] [SEP][PAD] [UNK] [mask] ［MASK］ <mask><pad> <|endoftext|>x <MASK>",
    "emoji 👍🏽 family 👨‍👩‍👧 flags 🇫🇷 keycap 1️⃣",
    "",
    " ",
]


@pytest.fixture(scope="module")
def split():
    return split_held_out(default_corpus())


@pytest.fixture(scope="module", params=KINDS)
def tokenizer(request, split):
    train, _ = split
    return train_tokenizer(train + TRICKY * 3, request.param, VOCABULARY_SIZE)


def trainer_ids(tokenizer, texts):
    encodings = tokenizer.to_huggingface().encode_batch(texts, add_special_tokens=False)
    return [encoding.ids for encoding in encodings]


def test_in_graph_ids_equal_the_trainers_on_held_out_documents(tokenizer, split):
    _, held_out = split
    assert len(held_out) > 30
    token_ids = tokenizer(held_out)
    assert isinstance(token_ids, tf.RaggedTensor) and token_ids.dtype == tf.int32
    assert token_ids.to_list() == trainer_ids(tokenizer, held_out)
    unknown = tokenizer.special_token_ids.get("unk", -1)
    assert sum(row.count(unknown) for row in token_ids.to_list()) < 10


def test_in_graph_ids_equal_the_trainers_on_tricky_text(tokenizer):
    assert tokenizer(TRICKY).to_list() == trainer_ids(tokenizer, TRICKY)


def test_tf_data_map_tokenizes_in_graph(tokenizer, split):
    _, held_out = split
    dataset = tf.data.Dataset.from_tensor_slices(held_out).batch(16).map(tokenizer, num_parallel_calls=tf.data.AUTOTUNE)
    rows = [row for batch in dataset for row in batch.to_list()]
    assert rows == tokenizer(held_out).to_list()


def test_special_tokens_come_first():
    expected = {
        "wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        "byte_bpe": ["<pad>", "<|endoftext|>", "<mask>"],
    }
    roles = {
        "wordpiece": {"pad": 0, "unk": 1, "start": 2, "end": 3, "mask": 4},
        "byte_bpe": {"pad": 0, "start": 1, "end": 1, "mask": 2},
    }
    for kind in KINDS:
        tokenizer = train_tokenizer(["some text to learn from"] * 3, kind, 400)
        assert [tokenizer.id_to_token(i) for i in range(len(expected[kind]))] == expected[kind]
        assert dict(tokenizer.special_token_ids) == roles[kind]
        assert set(tokenizer.special_token_ids) <= set(SPECIAL_TOKEN_ROLES)


def test_special_tokens_written_in_text_become_their_ids(tokenizer):
    mask = tokenizer.special_token_ids["mask"]
    written = "[MASK]" if tokenizer.kind == "wordpiece" else "<mask>"
    rows = tokenizer([f"The {written} sat on the mat.", f"two{written}{written}glued", written]).to_list()
    assert rows[0].count(mask) == 1
    assert rows[1].count(mask) == 2
    assert rows[2] == [mask]
    if tokenizer.kind == "wordpiece":
        start, end = tokenizer.special_token_ids["start"], tokenizer.special_token_ids["end"]
        assert tokenizer(["[CLS] x [SEP]"]).to_list()[0][::2] == [start, end]
        assert mask not in tokenizer(["[mask] [Mask]"]).to_list()[0]  # only the exact spelling


def test_detokenize(tokenizer, split):
    _, held_out = split
    texts = held_out[:10]
    decoded = [text.decode("utf-8") for text in tokenizer.detokenize(tokenizer(texts)).numpy()]
    if tokenizer.kind == "byte_bpe":
        assert decoded == texts  # lossless
    else:
        assert decoded[0].split() == decoded[0].lower().split()
    assert tokenizer.detokenize(tokenizer(["Hello"]).to_list()[0]).shape == ()


def test_token_lookups(tokenizer):
    mask = tokenizer.special_token_ids["mask"]
    assert tokenizer.token_to_id(tokenizer.id_to_token(mask)) == mask
    assert tokenizer.vocabulary_size <= VOCABULARY_SIZE
    with pytest.raises(UnknownNameError, match="not in the"):
        tokenizer.token_to_id("no such token, surely")
    with pytest.raises(ConfigError, match="out of range"):
        tokenizer.id_to_token(tokenizer.vocabulary_size)


def test_save_and_load_give_the_same_ids(tokenizer, split, tmp_path):
    _, held_out = split
    folder = tmp_path / "tokenizer"
    tokenizer.save(folder)
    files = {"wordpiece": ["tokenizer.json", "vocabulary.txt"], "byte_bpe": ["merges.txt", "tokenizer.json", "vocabulary.json"]}
    assert sorted(path.name for path in folder.iterdir()) == files[tokenizer.kind]
    config = json.loads((folder / "tokenizer.json").read_text())
    assert config["kind"] == tokenizer.kind and config["lowercase"] == (tokenizer.kind == "wordpiece")

    loaded = Tokenizer.load(folder)
    assert (loaded.kind, loaded.vocabulary_size) == (tokenizer.kind, tokenizer.vocabulary_size)
    assert loaded.special_token_ids == tokenizer.special_token_ids
    texts = held_out[:20] + TRICKY[:4]
    assert loaded(texts).to_list() == tokenizer(texts).to_list()

    tokenizer.save(folder)  # over an existing one
    assert Tokenizer.load(folder).vocabulary_size == tokenizer.vocabulary_size


def test_loading_a_missing_or_corrupt_tokenizer_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="no tokenizer at") as error:
        Tokenizer.load(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(error.value)

    folder = tmp_path / "broken"
    train_tokenizer(["a b c"] * 3, "wordpiece", 100).save(folder)
    (folder / "vocabulary.txt").unlink()
    with pytest.raises(ConfigError, match="corrupt tokenizer at") as error:
        Tokenizer.load(folder)
    assert str(folder) in str(error.value)

    (folder / "vocabulary.txt").write_text("just\nwords\n")
    with pytest.raises(ConfigError, match=r"corrupt tokenizer .*\[UNK\]"):
        Tokenizer.load(folder)


def test_training_errors():
    with pytest.raises(UnknownNameError, match="did you mean 'wordpiece'"):
        train_tokenizer(["a b c"], "wordpeice")
    with pytest.raises(CorpusError, match="empty"):
        train_tokenizer(["", "  \n"], "byte_bpe")
    with pytest.raises(ConfigError, match="at least 259"):
        train_tokenizer(["a b c"], "byte_bpe", 100)
    with pytest.raises(ConfigError, match="vocabulary_size=20 is too small"):
        train_tokenizer(["the alphabet of this corpus is larger"], "wordpiece", 20)
    with pytest.raises(ConfigError, match="single string"):
        train_tokenizer("a b c", "wordpiece")
    with pytest.raises(ConfigError, match="strings, got int"):
        train_tokenizer(["a", 1], "wordpiece")


def test_calls_take_a_batch_of_strings(tokenizer):
    assert tokenizer(tf.constant(["a", ""])).to_list()[1] == []
    with pytest.raises(ConfigError, match="1-D batch"):
        tokenizer([["nested"]])


def vocabulary(tokenizer):
    return [tokenizer.id_to_token(i) for i in range(tokenizer.vocabulary_size)]


def copy_corpus_cache(session_cache, cache):
    """Let a fresh cache directory start with the session's default corpus."""
    default_corpus()
    shutil.copytree(session_cache / "corpus", cache / "corpus")


def test_default_tokenizer_is_trained_once_and_cached(zoo_cache_dir, tmp_path, monkeypatch):
    copy_corpus_cache(zoo_cache_dir, tmp_path)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    tokenizer = default_tokenizer("byte_bpe", 500)
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    assert (tmp_path / "tokenizers" / f"byte_bpe-500-{version}" / "merges.txt").is_file()
    assert default_tokenizer("byte_bpe", 500) is tokenizer

    def no_training(*args, **kwargs):
        raise AssertionError("the cached tokenizer should have been loaded")

    monkeypatch.setattr(tokenizer_module, "train_tokenizer", no_training)
    monkeypatch.setattr(tokenizer_module, "_default_tokenizers", {})  # as in a new process
    reloaded = default_tokenizer("byte_bpe", 500)
    assert reloaded is not tokenizer
    assert vocabulary(reloaded) == vocabulary(tokenizer)


def test_default_tokenizer_uses_the_one_another_process_saved_first(zoo_cache_dir, tmp_path, monkeypatch):
    copy_corpus_cache(zoo_cache_dir, tmp_path)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    theirs = train_tokenizer(["another corpus entirely, trained elsewhere"] * 3, "wordpiece", 300)

    def train_while_another_process_saves(documents, kind, vocabulary_size):
        # vocabulary_size is what the trainer is asked for: the cache's 300 less the sentinels.
        theirs.save(tmp_path / "tokenizers" / f"{kind}-300-{version}")
        return train_tokenizer(documents[:50], kind, vocabulary_size)

    monkeypatch.setattr(tokenizer_module, "train_tokenizer", train_while_another_process_saves)
    assert vocabulary(default_tokenizer("wordpiece", 300)) == vocabulary(theirs)


def test_a_broken_default_tokenizer_cache_is_trained_again(zoo_cache_dir, tmp_path, monkeypatch):
    copy_corpus_cache(zoo_cache_dir, tmp_path)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    folder = tmp_path / "tokenizers" / f"byte_bpe-400-{version}"
    folder.mkdir(parents=True)
    (folder / "tokenizer.json").write_text("{not json")
    trained = default_tokenizer("byte_bpe", 400)
    assert vocabulary(Tokenizer.load(folder)) == vocabulary(trained)


@pytest.mark.slow
def test_processes_racing_for_the_default_tokenizer_agree(zoo_cache_dir, tmp_path):
    """wordpiece training differs from run to run: only the cache makes the racers agree."""
    copy_corpus_cache(zoo_cache_dir, tmp_path)
    script = textwrap.dedent(
        """
        import hashlib, json
        from zoo.text.tokenizer import default_tokenizer
        tokenizer = default_tokenizer("wordpiece", 1000)
        tokens = [tokenizer.id_to_token(i) for i in range(tokenizer.vocabulary_size)]
        print(hashlib.sha256(json.dumps(tokens).encode()).hexdigest())
        """
    )
    environment = {**os.environ, "ZOO_CACHE_DIR": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    racers = [
        subprocess.Popen([sys.executable, "-c", script], env=environment, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    digests = {racer.communicate(timeout=300)[0].strip() for racer in racers}
    assert all(racer.returncode == 0 for racer in racers)
    saved = vocabulary(Tokenizer.load(next((tmp_path / "tokenizers").iterdir())))
    assert digests == {hashlib.sha256(json.dumps(saved).encode()).hexdigest()}


def test_resolve_tokenizer(tokenizer, tmp_path):
    assert resolve_tokenizer(tokenizer, "byte_bpe") is tokenizer
    tokenizer.save(tmp_path / "saved")
    assert resolve_tokenizer(str(tmp_path / "saved"), "wordpiece").vocabulary_size == tokenizer.vocabulary_size
    assert resolve_tokenizer(None, tokenizer.kind, 600) is default_tokenizer(tokenizer.kind, 600)
    with pytest.raises(ConfigError, match="tokenizer must be"):
        resolve_tokenizer(42, "wordpiece")
