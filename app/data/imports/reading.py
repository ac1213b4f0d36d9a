"""Bytes to a table of text: what a person's export looks like on disk, read leniently.

Spreadsheets and exports write CSV many ways: with or without a byte-order mark, CRLF or LF,
commas, semicolons (locales whose decimal mark is a comma) or tabs between fields, UTF-8,
UTF-16 (Excel's "Unicode text") or Windows-1252. All of these are read; what is not text at
all (an image, a zip, a workbook) is refused by its first bytes, with a message saying what
it looks like.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass

from app.data.imports.errors import InvalidImport

MAX_IMPORT_BYTES = 2 * 1024 * 1024
"""Largest file an import takes: IMDb's export of 20,000 ratings is about 2 MB."""
SEPARATORS = (",", ";", "\t")

# What a file that is not text starts with, and what to call it.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive (a spreadsheet such as .xlsx or .ods is one)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel workbook (.xls)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
SAVE_AS_CSV = "Export your ratings as CSV (or save the sheet as CSV) and choose that file."


@dataclass(frozen=True)
class Table:
    """A CSV file's header and rows; `lines[i]` is the line of the file where row i starts."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    lines: tuple[int, ...]
    separator: str


def read_table(data: bytes) -> Table:
    """The file's header and rows; InvalidImport when it is empty, too large or not CSV."""
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidImport(
            f"The file is over {MAX_IMPORT_BYTES // (1024 * 1024)} MiB; "
            "an export of 20,000 ratings takes about 2 MB.",
            too_large=True,
        )
    text = decode(data)
    if not text.strip():
        raise InvalidImport("The file is empty: there is no header and no ratings.")
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    separator = _separator(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator, strict=True)
    header: tuple[str, ...] | None = None
    rows: list[tuple[str, ...]] = []
    lines: list[int] = []
    start = 1
    try:
        for record in reader:
            if any(field.strip() for field in record):
                if header is None:
                    header = tuple(field.strip() for field in record)
                else:
                    rows.append(tuple(record))
                    lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidImport(f"This is not readable as CSV: {exc}.", row=start) from None
    if header is None:
        raise InvalidImport("The file is empty: there is no header and no ratings.")
    return Table(header, tuple(rows), tuple(lines), separator)


def decode(data: bytes) -> str:
    """The file's text: UTF-8 (with or without a BOM), UTF-16 with a BOM, else Windows-1252."""
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            raise InvalidImport(f"This file is {kind}, not CSV text. {SAVE_AS_CSV}")
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise InvalidImport(f"This file is not readable as text. {SAVE_AS_CSV}") from None
    if b"\x00" in data[:4096]:
        raise InvalidImport(f"This file holds binary data, not CSV text. {SAVE_AS_CSV}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # Windows' Western code page, which Excel writes in many locales; Latin-1 is the
        # same but for 0x80-0x9F, where it has control characters rather than € or curly quotes.
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _separator(line: str) -> str:
    """The separator the header line uses most, outside quotes (a comma if none)."""
    counts = dict.fromkeys(SEPARATORS, 0)
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(SEPARATORS, key=lambda s: counts[s])
    return best if counts[best] else ","
