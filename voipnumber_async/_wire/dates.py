"""The service's date form, `20 May 2024 08:28:37` (UTC assumed): parsed and written.

The only documented dates fall in May, whose full and short names are the same word, so
months are read in full or abbreviated (the contract's rule for `created` and
`mdr_created`).
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import Final

_MONTHS: Final = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_SERVICE_MONTHS: Final = (
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
)  # fmt: skip


# Messages sent in the same second share their `created` text, and datetimes are
# immutable: a burst of sends parses each second once.
@functools.lru_cache(maxsize=64)
def parse_service_datetime(value: str) -> datetime:
    """Parse the service's `20 May 2024 08:28:37` (UTC assumed) into an aware datetime.

    Months are accepted in full or abbreviated. Hand-written rather than `strptime`,
    which costs several times more and depends on the locale.
    """
    try:
        day, month, year, clock = value.split()
        hour, minute, second = clock.split(":")
        return datetime(
            int(year),
            _MONTHS[month.lower()],
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone.utc,
        )
    except (ValueError, KeyError, OverflowError):
        # OverflowError: a year of many digits (int() takes it; datetime() cannot).
        raise ValueError(
            f"expected a date such as '20 May 2024 08:28:37', got {value[:64]!r}"
        ) from None


# The journal of a bulk run writes the `created` of every message sent: the same few.
@functools.lru_cache(maxsize=64)
def format_service_datetime(value: datetime) -> str:
    """The service's date form of an aware datetime, in UTC."""
    utc = value.astimezone(timezone.utc)
    return f"{utc.day} {_SERVICE_MONTHS[utc.month - 1]} {utc.year} {utc:%H:%M:%S}"
