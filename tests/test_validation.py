"""Numbers are checked at their boundaries before anything is sent."""

from __future__ import annotations

import pytest

from voipnumber_async import InvalidRequestError
from voipnumber_async._validation import check_number


@pytest.mark.parametrize("number", ["+12", "+123456", "+12345678901234567", "+", "12345678"])
def test_a_number_too_short_too_long_or_without_plus_is_refused(number: str) -> None:
    with pytest.raises(InvalidRequestError, match=r"E\.164") as caught:
        check_number("to", number)
    assert caught.value.field == "to"


@pytest.mark.parametrize("number", ["+1234567", "+447483866525", "+123456789012345"])
def test_numbers_of_8_to_16_characters_are_accepted(number: str) -> None:
    assert check_number("to", number) == number
