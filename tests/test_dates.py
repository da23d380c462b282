from datetime import UTC, date, datetime

import pytest

from search.dates import parse_datetime


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-09-23", datetime(2022, 9, 23, tzinfo=UTC)),
        ("2022-09-23T10:15:00Z", datetime(2022, 9, 23, 10, 15, tzinfo=UTC)),
        ("2022-09-23T10:15:00.123+02:00", datetime(2022, 9, 23, 8, 15, 0, 123000, tzinfo=UTC)),
        ("2022-09-23 10:15:00", datetime(2022, 9, 23, 10, 15, tzinfo=UTC)),
        ("Fri, 23 Sep 2022 10:15:00 GMT", datetime(2022, 9, 23, 10, 15, tzinfo=UTC)),
        ("Fri, 23 Sep 2022 10:15:00 +0100", datetime(2022, 9, 23, 9, 15, tzinfo=UTC)),
        ("23 Sep 2022 10:15 EST", datetime(2022, 9, 23, 15, 15, tzinfo=UTC)),
        ("Fri, 23 Sep 22 10:15:00 -0000", datetime(2022, 9, 23, 10, 15, tzinfo=UTC)),
    ],
)
def test_common_formats(text, expected):
    assert parse_datetime(text) == expected


def test_values_that_are_already_dates():
    assert parse_datetime(date(2020, 1, 2)) == datetime(2020, 1, 2, tzinfo=UTC)
    assert parse_datetime(datetime(2020, 1, 2, 3)) == datetime(2020, 1, 2, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", ["yesterday", "Fri, 32 Sep 2022 10:00:00 GMT", "", None, 20220923, [], "0001-01-01T00:00:00+01:00"]
)
def test_not_dates(value):
    assert parse_datetime(value) is None
