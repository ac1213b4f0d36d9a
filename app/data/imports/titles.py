"""Titles reduced to what two spellings of one film share, and the catalogue indexed by them.

MovieLens writes "Matrix, The" and "Cité des enfants perdus, La (City of Lost Children,
The)"; Letterboxd writes "The Matrix" and "The City of Lost Children". Both reduce to the
same keys: accents, case and punctuation dropped, "&" read as "and", a leading article
(moved back from the end if need be) dropped, and each title in parentheses a key of its own.
"""

from __future__ import annotations

import re
import threading
import unicodedata
import weakref
from collections import defaultdict
from dataclasses import dataclass

from app.data.catalogue import NO_LINK, NO_YEAR, Catalogue

# Articles of the languages MovieLens files titles in, as they stand before the noun.
ARTICLES = frozenset(
    (
        *("the", "a", "an"),
        *("le", "la", "les", "l", "un", "une"),
        *("il", "lo", "gli", "i"),
        *("el", "los", "las"),
        *("das", "der", "die", "den", "det", "ein", "eine"),
        *("o", "os", "as"),
        *("het", "de", "en"),
    )
)
_TRAILING_ARTICLE = re.compile(r"^(?P<title>.+),\s*(?P<article>[^\s,]+)$")
_PARENTHESES = re.compile(r"\s*\(([^()]*)\)")
_AKA = re.compile(r"^(?:a\.?k\.?a\.?|aka)\s+", re.IGNORECASE)
_NOT_WORD = re.compile(r"[^0-9a-z]+")

MAX_TITLE = 300
"""Characters of a title that matching reads (MovieLens' longest is under 200)."""
PRIMARY = 0
"""A film's key from its main title."""
ALTERNATIVE = 1
"""A film's key from a title in parentheses (another language's, or an a.k.a.)."""


def fold(text: str) -> str:
    """Lower case, accents gone, "&" as "and", punctuation as spaces, one leading article off."""
    text = text.replace("&", " and ")
    if text.isascii():  # most titles: nothing to decompose
        plain = text.lower()
    else:
        decomposed = unicodedata.normalize("NFKD", text)
        plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    words = _NOT_WORD.sub(" ", plain).split()
    if len(words) > 1 and words[0] in ARTICLES:
        words = words[1:]
    return " ".join(words)


def _front(title: str) -> str:
    """'Matrix, The' -> 'The Matrix'; other titles as they are."""
    moved = _TRAILING_ARTICLE.match(title.strip())
    if moved and fold(moved["article"]) in ARTICLES:
        article = moved["article"]
        space = "" if article.endswith(("'", "’")) else " "
        return f"{article}{space}{moved['title']}"
    return title.strip()


def title_keys(title: str) -> list[tuple[str, int]]:
    """The keys a title is known by: its main title's (PRIMARY) and each in parentheses'."""
    # The patterns below backtrack: a title is short, and what is longer is cut here.
    title = title[:MAX_TITLE]
    alternatives = [_AKA.sub("", inner) for inner in _PARENTHESES.findall(title)]
    main = _PARENTHESES.sub("", title)
    keys = [(fold(_front(main)), PRIMARY), (fold(_front(title)), PRIMARY)]
    keys += [(fold(_front(other)), ALTERNATIVE) for other in alternatives]
    seen: dict[str, int] = {}
    for key, kind in keys:
        if key and key not in seen:
            seen[key] = kind
    return list(seen.items())


@dataclass(frozen=True)
class MatchIndex:
    """A catalogue's films by title key and by IMDb id, built once per catalogue."""

    titles: dict[str, tuple[tuple[int, int], ...]]
    """Key -> (catalogue position, PRIMARY or ALTERNATIVE) of each film known by it."""
    imdb: dict[int, int]
    """IMDb id -> catalogue position."""


_INDEXES: weakref.WeakKeyDictionary[Catalogue, MatchIndex] = weakref.WeakKeyDictionary()
_BUILDING = threading.Lock()


def index_of(catalogue: Catalogue) -> MatchIndex:
    """The catalogue's MatchIndex, built on first use and kept as long as the catalogue is."""
    found = _INDEXES.get(catalogue)
    if found is None:
        with _BUILDING:
            found = _INDEXES.get(catalogue)
            if found is None:
                found = _build(catalogue)
                _INDEXES[catalogue] = found
    return found


def _build(catalogue: Catalogue) -> MatchIndex:
    titles: defaultdict[str, list[tuple[int, int]]] = defaultdict(list)
    raw = catalogue.title_bytes.tobytes()
    offsets = catalogue.title_offsets.tolist()
    for position in range(len(catalogue)):
        title = raw[offsets[position] : offsets[position + 1]].decode("utf-8")
        for key, kind in title_keys(title):
            titles[key].append((position, kind))
    imdb = {
        int(imdb_id): position
        for position, imdb_id in enumerate(catalogue.imdb_ids.tolist())
        if imdb_id != NO_LINK
    }
    return MatchIndex({key: tuple(found) for key, found in titles.items()}, imdb)


def year_of(catalogue: Catalogue, position: int) -> int | None:
    """The film's year, None if the catalogue has none."""
    year = int(catalogue.years[position])
    return None if year == NO_YEAR else year
