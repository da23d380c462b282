"""The project's own exceptions. Every engine translates its failures into these."""


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


class IndexLocked(SearchError):
    """Another writer holds the index."""
