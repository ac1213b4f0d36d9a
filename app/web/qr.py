"""QR codes for links, drawn on the server as inline SVG (segno): no image service, no script."""

from __future__ import annotations

import functools
import html
import io

import segno

QR_CACHE = 1024
"""QR codes kept (about 2 KB each): one per night's link, made once per worker."""


@functools.lru_cache(maxsize=QR_CACHE)
def qr_svg(text: str, label: str) -> str:
    """`text` as a QR code: an inline SVG element, black on white, `label` its accessible name."""
    out = io.BytesIO()
    code = segno.make(text, error="m")
    code.save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        scale=4,
        border=4,
        omitsize=True,
        svgclass="qr-code",
        lineclass=None,
        dark="#000",
        light="#fff",
    )
    named = f'role="img" aria-label="{html.escape(label)}"'
    return out.getvalue().decode("ascii").replace("<svg ", f"<svg {named} ", 1)
