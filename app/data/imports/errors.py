"""Why an import cannot be read, and where in the file."""

from __future__ import annotations


class InvalidImport(ValueError):
    """The file cannot be imported; `row` (a line of the file, the header being 1) and
    `column` (as the header spells it) say where, when the fault has a place.

    The message never quotes more of the file than the one value at fault: uploads are
    neither stored nor logged.
    """

    def __init__(
        self,
        message: str,
        *,
        row: int | None = None,
        column: str | None = None,
        too_large: bool = False,
    ) -> None:
        where = ", ".join(
            part
            for part in (
                f"row {row:,}" if row is not None else "",
                f'column "{column}"' if column is not None else "",
            )
            if part
        )
        text = f"{where[0].upper()}{where[1:]}: {message}" if where else message
        super().__init__(text)
        self.message = text
        self.row = row
        self.column = column
        self.too_large = too_large
