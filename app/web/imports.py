"""POST /api/imports: a rating export (IMDb, Letterboxd, MovieLens) in, matched ratings out.

The file comes as the body (text/csv) or as the field `file` of a multipart form, at most
MAX_IMPORT_BYTES. Nothing is stored: the upload is read in memory (never spooled to a
temporary file), matched, and forgotten; only the (film, rating) pairs go back. It is never
logged either: the access log has the path, and errors quote one cell at most.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

from quart import Blueprint, Request, Response, jsonify, request
from quart.formparser import FormDataParser
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from app.engine import MAX_IMPORT_BYTES, ImportResult, InvalidImport
from app.web.errors import json_error
from app.web.params import InvalidInput
from app.web.shared import service

bp = Blueprint("imports", __name__, url_prefix="/api")

IMPORT_BODY_BYTES = MAX_IMPORT_BYTES + 64 * 1024
"""A request carrying an import may be this large: the file and a multipart form's framing."""
IMPORT_PATHS = re.compile(
    r"/api/imports|/rate|/me/[^/]+|/nights/[A-Za-z0-9_-]{1,64}/(?:import|join)"
)
"""Where a POST may carry an import, and so a body larger than the app's MAX_CONTENT_LENGTH:
/me/<token> is a saved profile's page; a movie night's import and its join form may bring one."""
CSV_TYPES = frozenset({"text/csv", "text/plain", "text/tab-separated-values", "application/csv"})
MIB = 1024 * 1024
TOO_LARGE = f"The file is over {MAX_IMPORT_BYTES // MIB} MiB; an export of 20,000 ratings is 2 MB."


class ImportingRequest(Request):
    """Quart's request, allowing an import's size where one is posted, and keeping uploads
    in memory rather than in temporary files."""

    def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any) -> None:
        importing = method == "POST" and IMPORT_PATHS.fullmatch(path) is not None
        if importing:
            kwargs["max_content_length"] = IMPORT_BODY_BYTES
        super().__init__(method, scheme, path, *args, **kwargs)
        if importing:
            # A pasted export is a form field, not a file: it may be as large as a file.
            self.max_content_length = IMPORT_BODY_BYTES
            self.max_form_memory_size = IMPORT_BODY_BYTES

    def make_form_data_parser(self) -> FormDataParser:
        """The form parser, with files read into memory: an upload is never written to disk."""
        parser = super().make_form_data_parser()
        parser.stream_factory = _in_memory
        return parser


def _in_memory(*_: Any, **__: Any) -> io.BytesIO:
    return io.BytesIO()


@bp.post("/imports")
async def import_file() -> dict[str, Any]:
    """Read an export, match its films to the catalogue and answer the ratings found."""
    data = await uploaded_file()
    result = await service().import_ratings(data)
    return import_json(result)


async def uploaded_file(field: str = "file") -> bytes:
    """The file a request carries: its body as text/csv, or a multipart form's `field`.

    RequestEntityTooLarge above MAX_IMPORT_BYTES, UnsupportedMediaType for another type,
    InvalidInput when the form has no such field.
    """
    if (request.content_length or 0) > IMPORT_BODY_BYTES:
        raise RequestEntityTooLarge(TOO_LARGE)
    if request.mimetype in CSV_TYPES:
        body = await request.get_data(as_text=False)
        return body if isinstance(body, bytes) else body.encode("utf-8")
    if request.mimetype == "multipart/form-data":
        files = await request.files
        upload = files.get(field)
        if upload is not None:
            data = upload.read()
            return data if isinstance(data, bytes) else data.encode("utf-8")
        # A form field rather than a file (curl -F 'file=<ratings.csv' sends one).
        text = (await request.form).get(field)
        if text is None:
            raise InvalidInput(field, f"Send the export as the form's field {field!r}.")
        return text.encode("utf-8")
    raise UnsupportedMediaType(
        "Send the export as the body with Content-Type: text/csv, "
        "or as the field 'file' of a multipart/form-data form."
    )


async def posted_export(form: Mapping[str, str]) -> bytes | None:
    """The export a page's form carries: the file chosen, else the text pasted; None for neither."""
    upload = (await request.files).get("file")
    if upload is not None and upload.filename:
        data = upload.read()
        if data:
            return data if isinstance(data, bytes) else data.encode("utf-8")
    pasted = form.get("paste", "")
    return pasted.encode("utf-8") if pasted.strip() else None


@bp.errorhandler(InvalidImport)
async def invalid_import(exc: InvalidImport) -> tuple[Response, int]:
    """400 naming the row and column at fault (413 for a file over the limit)."""
    status = 413 if exc.too_large else 400
    error: dict[str, object] = {"status": status, "message": exc.message, "field": "file"}
    if exc.row is not None:
        error["row"] = exc.row
    if exc.column is not None:
        error["column"] = exc.column
    return jsonify({"error": error}), status


@bp.errorhandler(RequestEntityTooLarge)
async def too_large(exc: RequestEntityTooLarge) -> tuple[Response, int]:
    """413 in the words of an import (the app's own says how many ratings JSON may hold)."""
    return json_error(413, TOO_LARGE, "file")


def import_json(result: ImportResult) -> dict[str, Any]:
    """Serialise an ImportResult as the API answers it."""
    return {
        "format": result.format,
        "rows": result.rows,
        "matched": result.matched,
        "ratings": [{"movie_id": m, "rating": r} for m, r in result.ratings],
        "unmatched": [
            {"row": u.row, "title": u.title, "year": u.year, "reason": u.reason}
            for u in result.unmatched
        ],
    }
