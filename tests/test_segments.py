"""SMS segment estimates: GSM-7 vs UCS-2 and the multipart limits."""

from __future__ import annotations

import pytest

from voipnumber_async import SegmentEstimate, estimate_segments


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", SegmentEstimate(encoding="GSM-7", segments=0, units=0, units_per_segment=160)),
        (
            "Thank you",
            SegmentEstimate(encoding="GSM-7", segments=1, units=9, units_per_segment=160),
        ),
        (
            "a" * 160,
            SegmentEstimate(encoding="GSM-7", segments=1, units=160, units_per_segment=160),
        ),
        (
            "a" * 161,
            SegmentEstimate(encoding="GSM-7", segments=2, units=161, units_per_segment=153),
        ),
        (
            "a" * 306,
            SegmentEstimate(encoding="GSM-7", segments=2, units=306, units_per_segment=153),
        ),
        (
            "a" * 307,
            SegmentEstimate(encoding="GSM-7", segments=3, units=307, units_per_segment=153),
        ),
        ("€" * 80, SegmentEstimate(encoding="GSM-7", segments=1, units=160, units_per_segment=160)),
        ("Grüße", SegmentEstimate(encoding="GSM-7", segments=1, units=5, units_per_segment=160)),
        ("ł" * 70, SegmentEstimate(encoding="UCS-2", segments=1, units=70, units_per_segment=70)),
        ("ł" * 71, SegmentEstimate(encoding="UCS-2", segments=2, units=71, units_per_segment=67)),
        ("😀" * 35, SegmentEstimate(encoding="UCS-2", segments=1, units=70, units_per_segment=70)),
    ],
)
def test_estimates(body: str, expected: SegmentEstimate) -> None:
    assert estimate_segments(body) == expected


def test_an_escaped_gsm_character_never_straddles_two_parts() -> None:
    # 152 plain septets then "€" (2 septets): the "€" moves whole to part two.
    assert estimate_segments("a" * 152 + "€" + "a" * 10).segments == 2
    assert estimate_segments("a" * 152 + "€" + "a" * 152).segments == 3


def test_a_surrogate_pair_never_straddles_two_parts() -> None:
    # 66 units then an emoji (2 units): 68 > 67, so the emoji starts part two.
    assert estimate_segments("ł" * 66 + "😀" + "ł" * 65).segments == 2
    assert estimate_segments("ł" * 66 + "😀" + "ł" * 66).segments == 3
