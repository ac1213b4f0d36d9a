"""Why the data cannot be had: each error carries a full text for the log and one for clients.

The full text (`str(exc)`) names the server's paths and URLs, which the operator needs; the
public text (`exc.public`) names the settings instead (DATA_DIR, MOVIELENS_SOURCE), since a
page or an API answer must not show where the server keeps its files or what it fetches.
Each is written where the error is raised, where the difference is known.
"""

from __future__ import annotations

DATASET_HINT = "Point MOVIELENS_SOURCE at an intact MovieLens release."
OFFLINE_HINT = (
    "Check the network connection, or download the zip elsewhere and set MOVIELENS_SOURCE "
    "to its local path (for example MOVIELENS_SOURCE=/path/to/ml-latest-small.zip)."
)
STORAGE_HINT = "Check that DATA_DIR is writable and has free space."


class DatasetError(Exception):
    """The dataset cannot be used: `str()` says what is wrong, `public` the same for clients.

    `hint` says what the operator can do about it. `public` defaults to the message, for
    messages that name nothing of the server (a file's own name such as ratings.csv is fine).
    """

    hint = DATASET_HINT

    def __init__(self, message: str, *, public: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.public = message if public is None else public
        if hint is not None:
            self.hint = hint


class FetchError(DatasetError):
    """The dataset could not be fetched (a download, a checksum, a source that is not there)."""

    hint = OFFLINE_HINT


class StorageError(DatasetError):
    """DATA_DIR could not be read or written."""

    hint = STORAGE_HINT


def storage_error(exc: OSError, data_dir: str) -> StorageError:
    """The StorageError for an OSError met in DATA_DIR (`data_dir`, for the log only)."""
    reason = exc.strerror or type(exc).__name__
    where = f" ({exc.filename})" if exc.filename else ""
    return StorageError(
        f"Could not read or write the dataset in DATA_DIR={data_dir}: {reason}{where}.",
        public=f"Could not read or write the dataset in DATA_DIR: {reason}.",
    )


def not_a_folder(data_dir: str) -> StorageError:
    """The StorageError for a DATA_DIR that exists but is a plain file."""
    return StorageError(
        f"DATA_DIR={data_dir} is a file, not a folder.",
        public="DATA_DIR is a file, not a folder.",
        hint="Set DATA_DIR to a folder (it is made if missing), or move the file away.",
    )
