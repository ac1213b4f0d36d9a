"""People's own rating exports (IMDb, Letterboxd, MovieLens) read and matched to the catalogue.

`read_import(data)` recognises the format by its header and reads the rows; `match(parsed,
catalogue)` finds each row's film. Nothing here keeps or logs the file: only (film, rating)
pairs and the rows that were not matched come out.
"""

from app.data.imports.errors import InvalidImport
from app.data.imports.formats import FORMAT_LABELS, FORMATS, ImportRow, ParsedImport, parse
from app.data.imports.matching import (
    AMBIGUOUS,
    NOT_FOUND,
    REPEATED,
    UNRATED,
    Matched,
    Unmatched,
    match,
)
from app.data.imports.reading import MAX_IMPORT_BYTES, read_table
from app.data.imports.titles import fold, index_of


def read_import(data: bytes) -> ParsedImport:
    """The rows of an export, its format recognised; InvalidImport naming row and column."""
    return parse(read_table(data))


__all__ = [
    "AMBIGUOUS",
    "FORMATS",
    "FORMAT_LABELS",
    "MAX_IMPORT_BYTES",
    "NOT_FOUND",
    "REPEATED",
    "UNRATED",
    "ImportRow",
    "InvalidImport",
    "Matched",
    "ParsedImport",
    "Unmatched",
    "fold",
    "index_of",
    "match",
    "read_import",
]
