"""Words for full-text search: one tokenizer and stemmer for the index, the query and the oracle.

Text is case-folded, stripped of diacritics and cut into runs of letters and digits; each
word is reduced by the Porter stemmer (PyStemmer's ``porter``, the algorithm of SQLite FTS5's
``porter`` tokenizer). The index stores these stems, so a search finds what this module
finds, in every backend.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final

import Stemmer

__all__ = ["contains_phrase", "stem", "stems", "tokens"]

_WORD: Final = re.compile(r"[^\W_]+")
_STEMMER: Final = Stemmer.Stemmer("porter")


def tokens(text: str) -> list[str]:
    """The words of a text: case-folded, without diacritics.

    Args:
        text: Any text.

    Returns:
        The words, in order.
    """
    if text.isascii():  # nothing to fold but case
        return _WORD.findall(text.lower())
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return _WORD.findall(plain)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The stem of one word (a word of `tokens`), cached.

    Args:
        word: A case-folded word.

    Returns:
        Its Porter stem.
    """
    found: str = _STEMMER.stemWord(word)
    return found


def stems(text: str) -> list[str]:
    """The stems of a text's words, in order.

    Args:
        text: Any text.

    Returns:
        One stem per word.
    """
    return [stem(word) for word in tokens(text)]


def contains_phrase(text: str, query: str) -> bool:
    """Whether a text holds the query's words, stemmed, one after the other.

    Args:
        text: The searched text.
        query: One word or a phrase.

    Returns:
        True if the stems of ``query`` appear consecutively among the stems of ``text``.
    """
    wanted = stems(query)
    if not wanted:
        return False
    have = stems(text)
    n = len(wanted)
    return any(have[i : i + n] == wanted for i in range(len(have) - n + 1))
