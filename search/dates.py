"""Publication dates in the formats news exports use, as timezone-aware UTC datetimes (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime

DATE_FORMATS = "ISO 8601, YYYY-MM-DD or RFC 822"


def parse_datetime(value: object) -> datetime | None:
    """A UTC datetime from a datetime, a date or a string in ISO 8601 or RFC 822 form; None otherwise.

    A value without a zone is taken as UTC; a bare date is midnight UTC.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        parsed = _from_text(value.strip())
        if parsed is None:
            return None
        dt = parsed
    else:
        return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        return None


def _from_text(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        pass
    try:  # RFC 822 / 2822, as in RSS: "Fri, 23 Sep 2022 10:00:00 GMT"
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
