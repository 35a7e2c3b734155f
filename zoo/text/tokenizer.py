"""Tokenizers trained locally with HuggingFace ``tokenizers``, run in-graph with keras-hub.

Two kinds:

- ``"wordpiece"``: BERT-style, lowercased, accents stripped, words split on
  whitespace, punctuation and CJK characters. Special tokens ``[PAD]``,
  ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]`` are ids 0 to 4.
- ``"byte_bpe"``: GPT-2-style byte-level BPE, lossless, no unknown token.
  Special tokens ``<pad>``, ``<|endoftext|>`` (start and end), ``<mask>`` are
  ids 0 to 2.

Training runs the Rust trainer of ``tokenizers``; tokenizing runs TensorFlow
ops (``keras_hub.tokenizers.WordPieceTokenizer`` / ``BytePairTokenizer``
after a few ``tf.strings`` normalisation ops), so ``tf.data`` pipelines and
exported SavedModels tokenize without Python. The trainer's normalizer and
pre-tokenizer are configured to cut text exactly as the graph does, so the
trained vocabulary is the one the graph needs. Where the two sides cannot
agree on their own, both sides normalise the text the same way first:

- NUL becomes a space (TensorFlow's regex and ICU ops stop at a NUL byte).
- wordpiece lowercases with Unicode lowercase mapping after NFKC, as the
  trainer's ``Lowercase`` does, not keras-hub's NFKC case folding (they
  differ on ß, Cherokee, Hangul fillers, ...); capital sigma is mapped to σ
  first (ICU would pick the final form ς by context). Special tokens
  written in the text are not lowercased: they are parked as Unicode
  noncharacters meanwhile, so noncharacters in the text become U+FFFD.
- wordpiece maps the ~110 characters added in Unicode 12 to 14 on which
  ICU's and the trainer's Unicode tables disagree to U+FFFD.
- byte_bpe maps the Devanagari digit six ``६`` to ``6`` and ``Ĵ`` to ``J``
  plus a combining circumflex: keras-hub's in-graph splitter uses ``६`` as
  an internal marker and ``ĴA``, ``ĴB``, ... as stand-ins for special tokens.
- Words of any length are tokenized (no ``[UNK]`` for words over 100 bytes
  or characters: the two sides count length in different units).

Sentinels: :meth:`Tokenizer.with_sentinels` appends T5-style tokens
``<extra_id_0>``, ``<extra_id_1>``, ... at the end of the vocabulary, so the
ids of every other token stay what they were. Denoising objectives put one
in place of each dropped span. No text tokenizes to a sentinel (``<``, ``_``
and ``>`` are split off as punctuation); ids decode to their names. The
default tokenizers reserve ``min(100, vocabulary_size // 8)`` of them (T5
reserves 100) within ``vocabulary_size``; a cached default tokenizer
without them is trained again.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import sys
import threading
import types

import keras_hub
import tensorflow as tf
import tensorflow_text as tf_text
import tokenizers
from tokenizers import normalizers, pre_tokenizers

from zoo.errors import ConfigError, CorpusError, UnknownNameError, ZooError, unknown_name
from zoo.files import atomic_directory, atomic_write_text, cache_dir
from zoo.spec import SPECIAL_TOKEN_ROLES
from zoo.text.corpus import default_corpus, split_held_out

KINDS = ("wordpiece", "byte_bpe")
DEFAULT_VOCABULARY_SIZE = 8192
#: Role to token of each kind; the distinct tokens, in this order, are ids 0, 1, ...
SPECIAL_TOKENS = {
    "wordpiece": {"pad": "[PAD]", "unk": "[UNK]", "start": "[CLS]", "end": "[SEP]", "mask": "[MASK]"},
    "byte_bpe": {"pad": "<pad>", "start": "<|endoftext|>", "end": "<|endoftext|>", "mask": "<mask>"},
}
CONFIG_FILE = "tokenizer.json"
WORDPIECE_VOCABULARY_FILE = "vocabulary.txt"
BPE_VOCABULARY_FILE = "vocabulary.json"
BPE_MERGES_FILE = "merges.txt"
SUFFIX_INDICATOR = "##"
#: Name of sentinel ``i`` (T5's spelling).
SENTINEL_FORMAT = "<extra_id_{}>"
#: Most sentinels a default tokenizer reserves (T5's count); at most an eighth of its vocabulary.
DEFAULT_SENTINELS = 100
#: Tokens that end a sentence: optional leading space (``Ġ``), punctuation, then ``.``, ``!`` or ``?``.
_SENTENCE_END = re.compile(r"Ġ?[!-/:-@\[-`{-~]*[.!?]")
#: Longest word the WordPiece algorithm accepts (bytes in-graph, characters in the trainer).
MAX_WORD_LENGTH = 2**31 - 1

# Patterns below are written in the syntax both RE2 (TensorFlow) and Oniguruma
# (tokenizers) read the same way: no `\s` (ASCII in RE2, Unicode in Oniguruma)
# and no `$` (end of line in Oniguruma).

# Characters whose case or compatibility mapping ICU (TensorFlow) and the
# trainer's Unicode tables disagree on: additions of Unicode 12 to 14.
_UNICODE_SKEW = (
    r"[\x{2C2F}\x{32FF}\x{A7C0}\x{A7D0}\x{A7D6}\x{A7D8}\x{A7F2}-\x{A7F4}\x{AB69}"
    r"\x{10570}-\x{105BC}\x{10780}-\x{107BA}\x{1171E}\x{11938}\x{1F16C}\x{1FBF0}-\x{1FBF9}]"
)
# What keras-hub's WordPieceTokenizer drops and keeps as words when it splits,
# each as one character class (its patterns are alternations of classes of
# the same characters; Oniguruma matches one class faster, which takes about
# a tenth off training a vocabulary).
_WORD_DELIMITERS = r"[\t\n\f\r \p{Cc}\p{Cf}]"
_WORD_ISOLATED = (
    r"[!-/:-@\[-`{-~\p{P}"
    r"\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
    r"\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]"
)
# keras-hub's BytePairTokenizer splitting, step by step: a marker `६` before
# every space that starts a word, a GPT-2-like split, the last whitespace
# character of each piece split off, markers dropped.
_BPE_MARKER = "६"
_BPE_SPACES = r"\x{a0}\x{2009}\x{202f}\x{3000}"
_BPE_WHITESPACE = r"\t\n\f\r " + _BPE_SPACES
_BPE_WORD_START = f" (?=[^{_BPE_WHITESPACE}])"
_BPE_SPLIT = (
    r"'s|'t|'re|'ve|'m|'ll|'d"
    f"|[{_BPE_WHITESPACE}]+[\\n\\r\\t\\f{_BPE_MARKER}{_BPE_SPACES}]"
    r"| ?\p{L}+| ?\p{N}+"
    f"| ?[^\\t\\n\\f\\r \\p{{L}}\\p{{N}}{_BPE_SPACES}]+"
)
_BPE_TRAILING_SPACE = f"[ \\t\\r\\f\\v{_BPE_MARKER}{_BPE_SPACES}]\\z"

# Unicode noncharacters (for internal use): they stand in for special tokens
# while wordpiece lowercases, so text may hold none of them.
_NONCHARACTERS_START = 0xFDD0
_NONCHARACTERS = r"[\x{FDD0}-\x{FDEF}]"

# Fixed replacements applied by both sides, in this order.
_REPLACEMENTS = {
    "wordpiece": ((r"\x{0}", " "), (f"{_NONCHARACTERS}|{_UNICODE_SKEW}", "\ufffd")),
    "byte_bpe": ((r"\x{0}", " "), (_BPE_MARKER, "6"), ("Ĵ", "J\u0302")),
}


class _WordPieceLayer(keras_hub.tokenizers.WordPieceTokenizer):
    """keras-hub's WordPiece layer without the 100-byte word limit of tf-text.

    The trainer counts a word's length in characters, tf-text in bytes; with
    no limit on either side, both tokenize long non-ASCII words alike.
    """

    def _set_vocabulary_tf(self):
        self._fast_word_piece = tf_text.FastWordpieceTokenizer(
            vocab=self.vocabulary,
            token_out_type=self.compute_dtype,
            suffix_indicator=self.suffix_indicator,
            unknown_token=self.oov_token,
            max_bytes_per_word=MAX_WORD_LENGTH,
            no_pretokenization=True,
            support_detokenization=True,
        )


class Tokenizer(tf.Module):
    """A trained vocabulary with its in-graph keras-hub tokenizer.

    Build one with :func:`train_tokenizer`, :func:`default_tokenizer` or
    :meth:`Tokenizer.load`.

    Attributes:
        kind: ``"wordpiece"`` or ``"byte_bpe"``.
        vocabulary_size: number of token ids.
        special_token_ids: role (``pad``, ``unk``, ``start``, ``end``,
            ``mask``) to token id, for the roles this kind has.
        sentinel_ids: ids of ``<extra_id_0>``, ``<extra_id_1>``, ... in
            that order (empty unless added by :meth:`with_sentinels`).
        sentence_end_ids: sorted ids of the tokens that end a sentence
            (``.``, ``!``, ``?``, also after other punctuation or a space).
        layer: the keras-hub tokenizer that runs after zoo's normalisation;
            call the :class:`Tokenizer` itself to tokenize text.

    Args:
        kind: ``"wordpiece"`` or ``"byte_bpe"``.
        vocabulary: wordpiece: the tokens in id order; byte_bpe: token to id.
        merges: byte_bpe only: merge rules ``"a b"`` in rank order.

    Example:
        >>> tokenizer = train_tokenizer(["The cat sat.", "The cat ran."] * 5, "wordpiece", 100)
        >>> tokenizer(["The [MASK] sat."]).to_list() == [[tokenizer.token_to_id(t) for t in ["the", "[MASK]", "sat", "."]]]
        True
    """

    def __init__(self, kind: str, vocabulary, merges=None):
        _check_kind(kind)
        super().__init__(name=f"{kind}_tokenizer")
        self.kind = kind
        tokens = SPECIAL_TOKENS[kind]
        self._special_tokens = tuple(dict.fromkeys(tokens.values()))
        try:
            self.layer = _keras_hub_layer(kind, vocabulary, merges, self._special_tokens)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"invalid {kind} vocabulary: {error}") from None
        self.vocabulary_size = int(self.layer.vocabulary_size())
        if kind == "wordpiece":
            ids = {token: index for index, token in enumerate(self.layer.get_vocabulary())}
        else:
            ids = dict(self.layer.vocabulary)
        if sorted(ids.values()) != list(range(self.vocabulary_size)):
            raise ConfigError(f"the {kind} vocabulary must hold distinct tokens with ids 0 to {self.vocabulary_size - 1}")
        # Read-only mappings (tokenizers are shared between callers), which
        # tf.Module also leaves unwrapped.
        self._ids = types.MappingProxyType(ids)
        self._tokens = tuple(sorted(ids, key=ids.get))
        missing = [token for token in self._special_tokens if token not in self._ids]
        if missing:
            raise ConfigError(f"the {kind} vocabulary lacks the special tokens {missing}; train it with train_tokenizer")
        self.special_token_ids = types.MappingProxyType(
            {role: self._ids[tokens[role]] for role in SPECIAL_TOKEN_ROLES if role in tokens}
        )
        sentinels = []
        while SENTINEL_FORMAT.format(len(sentinels)) in self._ids:
            sentinels.append(self._ids[SENTINEL_FORMAT.format(len(sentinels))])
        self.sentinel_ids = tuple(sentinels)
        self.sentence_end_ids = tuple(
            index for index, token in enumerate(self._tokens) if _SENTENCE_END.fullmatch(token)
        )
        # In a tf.function keras-hub returns tensors, not Python lists.
        self._tokenize = tf.function(self._tokenize_graph, input_signature=[tf.TensorSpec([None], tf.string)])
        self._detokenize = tf.function(self.layer.detokenize, reduce_retracing=True)

    @property
    def lowercase(self) -> bool:
        """Whether text is lowercased (and accents stripped) before tokenizing."""
        return self.kind == "wordpiece"

    def __call__(self, strings) -> tf.RaggedTensor:
        """Token ids of each string: a 1-D string tensor or list in, int32 ragged rows out.

        No padding, no start or end token. Special tokens written in the text
        (``[MASK]``, ``<mask>``, ...) become their ids.

        Example:
            >>> tokenizer = train_tokenizer(["ab ab ab", "abc abc"], "byte_bpe", 300)
            >>> tokenizer(["ab <mask>", ""]).to_list() == [[tokenizer.token_to_id("ab"), tokenizer.token_to_id("Ġ"), 2], []]
            True
        """
        strings = tf.convert_to_tensor(strings, tf.string)
        if strings.shape.rank not in (None, 1):
            raise ConfigError(f"expected a 1-D batch of strings, got shape {strings.shape}; pass a list of strings")
        return self._tokenize(strings)

    def _tokenize_graph(self, strings):
        for pattern, replacement in _REPLACEMENTS[self.kind]:
            strings = tf.strings.regex_replace(strings, pattern, replacement)
        if self.lowercase:
            strings = self._fold_case_around_special_tokens(strings)
        return self.layer(strings)

    def _fold_case_around_special_tokens(self, strings):
        """:func:`_fold_case` except on special tokens, parked as noncharacters meanwhile."""
        placeholders = [chr(_NONCHARACTERS_START + index) for index in range(len(self._special_tokens))]
        for token, placeholder in zip(self._special_tokens, placeholders):
            strings = tf.strings.regex_replace(strings, re.escape(token), placeholder)
        strings = _fold_case(strings)
        for token, placeholder in zip(self._special_tokens, placeholders):
            strings = tf.strings.regex_replace(strings, placeholder, token.replace("\\", "\\\\"))
        return strings

    def detokenize(self, token_ids) -> tf.Tensor:
        """Text of token ids: a string per row (a scalar string for one flat list of ids).

        wordpiece joins words with single spaces and cannot restore case,
        accents or spacing; byte_bpe restores the text exactly.

        Example:
            >>> tokenizer = train_tokenizer(["The cat sat."] * 5, "wordpiece", 100)
            >>> tokenizer.detokenize(tokenizer(["The cat  sat."])).numpy().tolist()
            [b'the cat sat .']
        """
        if isinstance(token_ids, (list, tuple)):
            token_ids = tf.ragged.constant(token_ids, dtype=tf.int32)
        elif not isinstance(token_ids, tf.RaggedTensor):
            token_ids = tf.convert_to_tensor(token_ids)
        return self._detokenize(token_ids)

    def with_sentinels(self, count: int) -> "Tokenizer":
        """A tokenizer with `count` sentinels ``<extra_id_0>``, ... after this vocabulary (ids unchanged).

        Example:
            >>> tokenizer = train_tokenizer(["a b c"] * 3, "wordpiece", 100)
            >>> extended = tokenizer.with_sentinels(3)
            >>> extended.sentinel_ids == tuple(range(tokenizer.vocabulary_size, tokenizer.vocabulary_size + 3))
            True
            >>> extended.id_to_token(extended.sentinel_ids[-1])
            '<extra_id_2>'
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigError(f"the number of sentinels must be an integer >= 0, got {count!r}")
        if self.sentinel_ids:
            raise ConfigError(f"this tokenizer already has {len(self.sentinel_ids)} sentinels; add them once")
        names = [SENTINEL_FORMAT.format(index) for index in range(count)]
        if self.kind == "wordpiece":
            return Tokenizer(self.kind, [*self._tokens, *names])
        vocabulary = {**self.layer.vocabulary, **{name: self.vocabulary_size + i for i, name in enumerate(names)}}
        return Tokenizer(self.kind, vocabulary, self.layer.merges)

    def token_to_id(self, token: str) -> int:
        """The id of `token` (a vocabulary entry, e.g. ``"[MASK]"`` or ``"Ġthe"``).

        Example:
            >>> train_tokenizer(["a b c"] * 3, "wordpiece", 100).token_to_id("[MASK]")
            4
        """
        if token not in self._ids:
            raise UnknownNameError(
                f"token {token!r} is not in the {self.kind} vocabulary; tokenize text with tokenizer([text]) instead"
            )
        return int(self._ids[token])

    def id_to_token(self, token_id: int) -> str:
        """The vocabulary entry of `token_id`.

        Example:
            >>> train_tokenizer(["a b c"] * 3, "byte_bpe", 300).id_to_token(1)
            '<|endoftext|>'
        """
        if not 0 <= int(token_id) < self.vocabulary_size:
            raise ConfigError(f"token id {token_id} is out of range; ids run from 0 to {self.vocabulary_size - 1}")
        return self._tokens[int(token_id)]

    def to_huggingface(self) -> tokenizers.Tokenizer:
        """The equivalent HuggingFace tokenizer: the trainer's normalizer and pre-tokenizer with this vocabulary.

        ``encode(text, add_special_tokens=False).ids`` equals the in-graph
        ids; useful for tokenizing in plain Python.

        Example:
            >>> tokenizer = train_tokenizer(["The cat sat."] * 5, "wordpiece", 100)
            >>> tokenizer.to_huggingface().encode("The [MASK]", add_special_tokens=False).ids == tokenizer(["The [MASK]"]).to_list()[0]
            True
        """
        if self.kind == "wordpiece":
            model = tokenizers.models.WordPiece(
                dict(self._ids),
                unk_token=SPECIAL_TOKENS["wordpiece"]["unk"],
                max_input_chars_per_word=MAX_WORD_LENGTH,
            )
        else:
            merges = [tuple(merge.split(" ")) for merge in self.layer.merges]
            model = tokenizers.models.BPE(dict(self.layer.vocabulary), merges)
        hf_tokenizer = _huggingface_pipeline(self.kind, model)
        hf_tokenizer.add_special_tokens(list(self._special_tokens))
        return hf_tokenizer

    def get_config(self) -> dict:
        """The tokenizer as JSON values: ``kind``, ``vocabulary`` and, for byte_bpe, ``merges``.

        :meth:`from_config` makes the same tokenizer from it; a task saved
        with ``model.save("task.keras")`` carries its tokenizer this way.

        Example:
            >>> tokenizer = train_tokenizer(["a b c"] * 3, "wordpiece", 100)
            >>> Tokenizer.from_config(tokenizer.get_config())(["a c"]).to_list() == tokenizer(["a c"]).to_list()
            True
        """
        if self.kind == "wordpiece":
            return {"kind": self.kind, "vocabulary": list(self._tokens)}
        return {"kind": self.kind, "vocabulary": dict(self.layer.vocabulary), "merges": list(self.layer.merges)}

    @classmethod
    def from_config(cls, config: dict) -> "Tokenizer":
        """The tokenizer of :meth:`get_config`'s `config`."""
        try:
            return cls(config["kind"], config["vocabulary"], config.get("merges"))
        except (KeyError, TypeError) as error:
            raise ConfigError(f"not a tokenizer config ({error!r}); pass what Tokenizer.get_config returned") from None

    def save(self, directory) -> None:
        """Write the tokenizer to `directory`, replacing it atomically.

        Files: ``tokenizer.json`` (kind, lowercase, special tokens), then
        ``vocabulary.txt`` (wordpiece) or ``vocabulary.json`` and
        ``merges.txt`` (byte_bpe), all UTF-8.

        Example:
            >>> import tempfile
            >>> folder = pathlib.Path(tempfile.mkdtemp()) / "tokenizer"
            >>> train_tokenizer(["a b c"] * 3, "wordpiece", 100).save(folder)
            >>> sorted(p.name for p in folder.iterdir())
            ['tokenizer.json', 'vocabulary.txt']
        """
        with atomic_directory(directory) as folder:
            self._write_files(folder)

    def _write_files(self, folder: pathlib.Path) -> None:
        config = {"kind": self.kind, "lowercase": self.lowercase, "special_tokens": dict(SPECIAL_TOKENS[self.kind])}
        atomic_write_text(folder / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
        tokens = self.get_config()  # the vocabulary (and merges) as they are saved anywhere
        if self.kind == "wordpiece":
            atomic_write_text(folder / WORDPIECE_VOCABULARY_FILE, "".join(f"{token}\n" for token in tokens["vocabulary"]))
        else:
            atomic_write_text(folder / BPE_VOCABULARY_FILE, json.dumps(tokens["vocabulary"], ensure_ascii=False))
            atomic_write_text(folder / BPE_MERGES_FILE, "".join(f"{merge}\n" for merge in tokens["merges"]))

    @classmethod
    def load(cls, directory) -> "Tokenizer":
        """Read a tokenizer written by :meth:`save`.

        Example:
            >>> import tempfile
            >>> folder = pathlib.Path(tempfile.mkdtemp()) / "tokenizer"
            >>> train_tokenizer(["a b c"] * 3, "byte_bpe", 300).save(folder)
            >>> Tokenizer.load(folder).kind
            'byte_bpe'
        """
        folder = pathlib.Path(directory)
        if not (folder / CONFIG_FILE).is_file():
            raise ConfigError(f"no tokenizer at {folder}: {CONFIG_FILE} is missing; pass a folder written by Tokenizer.save")
        try:
            config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
            kind = config["kind"]
            if kind not in KINDS or config["lowercase"] != (kind == "wordpiece"):
                raise ValueError(f"unsupported kind {kind!r} with lowercase={config['lowercase']!r}")
            if config["special_tokens"] != SPECIAL_TOKENS[kind]:
                raise ValueError(f"special tokens {config['special_tokens']} differ from {SPECIAL_TOKENS[kind]}")
            if kind == "wordpiece":
                text = (folder / WORDPIECE_VOCABULARY_FILE).read_text(encoding="utf-8")
                return cls(kind, text.removesuffix("\n").split("\n"))
            vocabulary = json.loads((folder / BPE_VOCABULARY_FILE).read_text(encoding="utf-8"))
            lines = (folder / BPE_MERGES_FILE).read_text(encoding="utf-8").split("\n")
            return cls(kind, vocabulary, [line for line in lines if line and not line.startswith("#version")])
        except (OSError, ValueError, KeyError, TypeError, ConfigError) as error:
            raise ConfigError(
                f"corrupt tokenizer at {folder} ({error}); delete it and save or train the tokenizer again"
            ) from None


def _keras_hub_layer(kind: str, vocabulary, merges, special_tokens):
    """The keras-hub tokenizer of `kind`, splitting out `special_tokens` written in the text."""
    if kind == "wordpiece":
        return _WordPieceLayer(
            vocabulary=list(vocabulary),
            lowercase=False,  # done before, as the trainer does it: see _fold_case
            strip_accents=True,
            split=True,
            split_on_cjk=True,
            suffix_indicator=SUFFIX_INDICATOR,
            oov_token=SPECIAL_TOKENS[kind]["unk"],
            special_tokens=list(special_tokens),
            special_tokens_in_strings=True,
            dtype="int32",
            name=kind,
            _allow_python_workflow=False,  # eager calls too run the TensorFlow ops
        )
    return keras_hub.tokenizers.BytePairTokenizer(
        vocabulary=dict(vocabulary),
        merges=list(merges),
        unsplittable_tokens=list(special_tokens),
        dtype="int32",
        name=kind,
        # Eager calls too run the TensorFlow ops: keras-hub's Python path
        # splits text with another (Llama 3) pattern.
        _allow_python_workflow=False,
    )


def _fold_case(strings):
    """NFKC, then Unicode lowercase mapping, as the trainer's ``NFKC`` + ``Lowercase``."""
    strings = tf.strings.regex_replace(tf_text.normalize_utf8(strings, "NFKC"), "Σ", "σ")
    return tf.strings.lower(strings, encoding="utf-8")


def _model_and_trainer(kind: str, vocabulary_size: int, min_frequency: int) -> tuple:
    """An empty HuggingFace model of `kind` and its trainer."""
    special_tokens = list(dict.fromkeys(SPECIAL_TOKENS[kind].values()))
    if kind == "wordpiece":
        model = tokenizers.models.WordPiece(unk_token=SPECIAL_TOKENS[kind]["unk"], max_input_chars_per_word=MAX_WORD_LENGTH)
        trainer = tokenizers.trainers.WordPieceTrainer(
            vocab_size=vocabulary_size, min_frequency=min_frequency, special_tokens=special_tokens,
            continuing_subword_prefix=SUFFIX_INDICATOR, show_progress=False,
        )
    else:
        model = tokenizers.models.BPE()
        trainer = tokenizers.trainers.BpeTrainer(
            vocab_size=vocabulary_size, min_frequency=min_frequency, special_tokens=special_tokens,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
    return model, trainer


def _check_kind(kind) -> None:
    if kind not in KINDS:
        raise unknown_name("tokenizer kind", kind, KINDS)


def _huggingface_pipeline(kind: str, model) -> tokenizers.Tokenizer:
    """A HuggingFace tokenizer around `model` that normalises and splits text as the graph does."""
    hf_tokenizer = tokenizers.Tokenizer(model)
    replacements = [
        normalizers.Replace(tokenizers.Regex(pattern), replacement) for pattern, replacement in _REPLACEMENTS[kind]
    ]
    if kind == "wordpiece":
        hf_tokenizer.normalizer = normalizers.Sequence(
            replacements
            + [
                normalizers.NFKC(),
                normalizers.Replace("Σ", "σ"),
                normalizers.Lowercase(),
                normalizers.NFD(),
                normalizers.Replace(tokenizers.Regex(r"\p{Mn}"), ""),
            ]
        )
        hf_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(tokenizers.Regex(_WORD_DELIMITERS), "removed"),
                pre_tokenizers.Split(tokenizers.Regex(_WORD_ISOLATED), "isolated"),
            ]
        )
    else:
        hf_tokenizer.normalizer = normalizers.Sequence(
            replacements + [normalizers.Replace(tokenizers.Regex(_BPE_WORD_START), _BPE_MARKER + " ")]
        )
        hf_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(tokenizers.Regex(_BPE_SPLIT), "isolated"),
                pre_tokenizers.Split(tokenizers.Regex(_BPE_TRAILING_SPACE), "isolated"),
                pre_tokenizers.Split(_BPE_MARKER, "removed"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    return hf_tokenizer


def train_tokenizer(documents, kind: str = "wordpiece", vocabulary_size: int = DEFAULT_VOCABULARY_SIZE, *,
                    min_frequency: int = 2) -> Tokenizer:
    """Train a `kind` tokenizer of at most `vocabulary_size` tokens on `documents`.

    Args:
        documents: strings, one per document.
        kind: ``"wordpiece"`` or ``"byte_bpe"``.
        vocabulary_size: the most token ids, special tokens included; a small
            corpus can yield fewer.
        min_frequency: how often a pair must occur to be merged.

    wordpiece training is not reproducible across processes (the trainer
    breaks ties in hash order): save the tokenizer that a model was trained
    with, next to the model.

    Example:
        >>> tokenizer = train_tokenizer(["low lower lowest"] * 10, "byte_bpe", 300)
        >>> tokenizer.special_token_ids["mask"], tokenizer.vocabulary_size <= 300
        (2, True)
    """
    _check_kind(kind)
    if isinstance(documents, (str, bytes)):
        raise ConfigError("expected a list of documents, got a single string; wrap it in a list")
    documents = list(documents)
    strange = sorted({type(d).__name__ for d in documents if not isinstance(d, str)})
    if strange:
        raise ConfigError(f"documents must be strings, got {', '.join(strange)}")
    if not any(document.strip() for document in documents):
        raise CorpusError("no text to train a tokenizer on: the documents are empty; pass documents with text")
    if isinstance(vocabulary_size, bool) or not isinstance(vocabulary_size, int) or vocabulary_size < 1:
        raise ConfigError(f"vocabulary_size must be a positive integer, got {vocabulary_size!r}")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 0:
        raise ConfigError(f"min_frequency must be a non-negative integer, got {min_frequency!r}")
    model, trainer = _model_and_trainer(kind, vocabulary_size, min_frequency)
    hf_tokenizer = _huggingface_pipeline(kind, model)
    hf_tokenizer.train_from_iterator(documents, trainer, length=len(documents))
    vocabulary = hf_tokenizer.get_vocab(with_added_tokens=True)
    if len(vocabulary) > vocabulary_size:
        raise ConfigError(
            f"vocabulary_size={vocabulary_size} is too small for the special tokens and the characters of this "
            f"corpus; use at least {len(vocabulary)}"
        )
    if kind == "wordpiece":
        return Tokenizer(kind, sorted(vocabulary, key=vocabulary.get))
    merges = json.loads(hf_tokenizer.to_str())["model"]["merges"]
    return Tokenizer(kind, vocabulary, [m if isinstance(m, str) else " ".join(m) for m in merges])


_default_tokenizers: dict = {}
_default_lock = threading.Lock()


def default_tokenizer(kind: str, vocabulary_size: int = DEFAULT_VOCABULARY_SIZE) -> Tokenizer:
    """The `kind` tokenizer trained on the default corpus (its training split), cached on disk.

    Its last ``min(100, vocabulary_size // 8)`` ids are sentinels (see
    :meth:`Tokenizer.with_sentinels`).

    The first call trains it (a few seconds) and saves it under
    ``cache_dir()/tokenizers/``; later calls, also in other processes, load
    it. Processes racing to train it agree on the first one saved.

    Example:
        >>> default_tokenizer("wordpiece").special_token_ids["mask"]  # doctest: +SKIP
        4
    """
    _check_kind(kind)
    version = sys.version_info
    path = cache_dir() / "tokenizers" / f"{kind}-{vocabulary_size}-py{version.major}{version.minor}"
    with _default_lock:
        if path not in _default_tokenizers:
            _default_tokenizers[path] = _load_or_train(path, kind, vocabulary_size)
        return _default_tokenizers[path]


def _load_or_train(path: pathlib.Path, kind: str, vocabulary_size: int) -> Tokenizer:
    """Load the cached default tokenizer at `path`, or train and save it there."""
    broken = False
    sentinels = min(DEFAULT_SENTINELS, vocabulary_size // 8)
    if path.exists():
        try:
            cached = Tokenizer.load(path)
        except ZooError:
            cached = None
        if cached is not None and len(cached.sentinel_ids) == sentinels:
            return cached
        broken = True  # corrupt, or saved before sentinels existed: train again and replace it
    train, _ = split_held_out(default_corpus())
    tokenizer = train_tokenizer(train, kind, vocabulary_size - sentinels).with_sentinels(sentinels)
    try:
        with atomic_directory(path, replace=broken) as folder:
            tokenizer._write_files(folder)
    except FileExistsError:
        return Tokenizer.load(path)  # another process saved it first: use theirs
    return tokenizer


def resolve_tokenizer(tokenizer, kind: str, vocabulary_size: int | None = None) -> Tokenizer:
    """A :class:`Tokenizer` from what a user passed: None, a Tokenizer, or a saved folder.

    None gives :func:`default_tokenizer` of `kind` with `vocabulary_size`
    (default 8192); a Tokenizer is returned as is, whatever its kind.

    Example:
        >>> tokenizer = train_tokenizer(["a b c"] * 3, "wordpiece", 100)
        >>> resolve_tokenizer(tokenizer, "byte_bpe") is tokenizer
        True
    """
    if tokenizer is None:
        return default_tokenizer(kind, vocabulary_size or DEFAULT_VOCABULARY_SIZE)
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if isinstance(tokenizer, (str, os.PathLike)):
        return Tokenizer.load(tokenizer)
    raise ConfigError(
        f"tokenizer must be None, a zoo Tokenizer or a saved tokenizer folder, got {type(tokenizer).__name__}"
    )
