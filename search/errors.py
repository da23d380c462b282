"""The project's own exceptions. Every engine translates its failures into these."""

import errno

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NO_SPACE_TEXT = ("No space left on device", "Disk quota exceeded", "database or disk is full")
_SQLITE_FULL = 13


class SearchError(Exception):
    """Base class for every error the library raises on purpose."""


class ConfigError(SearchError):
    """A setting is unknown or has a bad value."""


class ModelError(SearchError):
    """The embedding model cannot be found, loaded or exported."""


class ArticleError(SearchError):
    """An input file or record is not a usable article."""

    def __init__(self, message: str, source: str = "", line: int | None = None):
        self.source = source
        self.line = line
        where = source + (f":{line}" if line else "")
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message


class InvalidQuery(SearchError):
    """A request parameter is out of range or malformed."""


class NotFound(SearchError):
    """An article id that is not in the index."""


class IndexMissing(SearchError):
    """There is no index where one was expected."""


class IndexCorrupt(SearchError):
    """The index exists but fails its consistency checks."""


class QueryTimeout(SearchError):
    """A search ran past its time budget (the ``request_budget_ms`` setting) and was given up."""


class IndexLocked(SearchError):
    """Another writer holds the index."""


class IndexReadOnly(SearchError):
    """The index cannot be written here (a read-only volume, or no permission); it can still be read."""


class DiskFull(SearchError):
    """A write failed for lack of disk space or quota; the live index generation is untouched."""


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) reports a full disk or quota:
    ENOSPC/EDQUOT from the OS, SQLITE_FULL from SQLite, or the OS's text inside an engine's own error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return True
        sqlite_code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF  # primary result code
        if sqlite_code == _SQLITE_FULL or any(text in str(exc) for text in _NO_SPACE_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
