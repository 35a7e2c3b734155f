"""Cutting documents into sentences in-graph, for objectives that pair segments (NSP, SOP).

A document is cut at blank lines and after terminal punctuation (with any
closing quotes or brackets) followed by whitespace and a character that is
not a lowercase letter, so ``e.g. this`` and ``setup.py`` stay whole.
tensorflow-text's ``StateBasedSentenceBreaker`` is not used: it cuts inside
``e.g.`` and file names, which docstrings and code comments are full of.
"""

from __future__ import annotations

import tensorflow as tf

#: Terminal punctuation, closing quotes or brackets, whitespace, then anything but a lowercase letter.
SENTENCE_END = r"([.!?][\"')\]]*)\s+([^\s\p{Ll}])"
#: A blank line, possibly holding spaces or tabs.
PARAGRAPH_BREAK = r"\n[ \t]*\n\s*"
_CUT = "\x1f"  # the unit separator marks the cuts before splitting


def split_sentences(texts) -> tf.RaggedTensor:
    """Cut each text of a 1-D string tensor into its sentences: a ragged ``[texts, sentences]`` of strings.

    Example:
        >>> split_sentences(tf.constant(["One. Two!\\n\\nThree, e.g. four (five.) Six"])).to_list()
        [[b'One.', b'Two!', b'Three, e.g. four (five.)', b'Six']]
    """
    texts = tf.strings.regex_replace(texts, PARAGRAPH_BREAK, _CUT)
    texts = tf.strings.regex_replace(texts, SENTENCE_END, "\\1" + _CUT + "\\2")
    return tf.strings.split(texts, _CUT)
