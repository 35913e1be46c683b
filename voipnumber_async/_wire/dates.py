"""The service's date form, `20 May 2024 08:28:37` (UTC assumed): parsed and written.

The only documented dates fall in May, whose full and short names are the same word, so
months are read in full or abbreviated (the contract's rule for `created` and
`mdr_created`).
"""

from __future__ import annotations

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


def format_service_datetime(value: datetime) -> str:
    """The service's date form of an aware datetime, in UTC."""
    utc = value.astimezone(timezone.utc)
    # Fields, not `strftime`: two thirds of its cost, and no locale.
    month = _SERVICE_MONTHS[utc.month - 1]
    return f"{utc.day} {month} {utc.year} {utc.hour:02}:{utc.minute:02}:{utc.second:02}"
