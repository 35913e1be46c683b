"""How many SMS segments a text costs: GSM-7 when every character allows it, else UCS-2.

An estimate, because a carrier may re-encode; it follows 3GPP TS 23.038 and the usual
concatenation limits (153 septets or 67 UTF-16 units per part of a multipart message).
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["SegmentEstimate", "estimate_segments"]

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Characters of the extension table cost two septets: an escape, then the character.
_GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")

_GSM7_SINGLE, _GSM7_PART = 160, 153
_UCS2_SINGLE, _UCS2_PART = 70, 67


@attrs.frozen(kw_only=True)
class SegmentEstimate:
    """The cost of a text as SMS.

    Attributes:
        encoding: `"GSM-7"` or `"UCS-2"`.
        segments: How many SMS parts the text is sent as (0 for an empty text).
        units: Its length in the encoding's units: septets for GSM-7, UTF-16 code
            units for UCS-2 (an emoji counts 2).
        units_per_segment: The capacity of each part at this length.
    """

    encoding: Literal["GSM-7", "UCS-2"]
    segments: int
    units: int
    units_per_segment: int


def _widths(body: str) -> tuple[Literal["GSM-7", "UCS-2"], list[int]]:
    if all(char in _GSM7_BASIC or char in _GSM7_EXTENDED for char in body):
        return "GSM-7", [2 if char in _GSM7_EXTENDED else 1 for char in body]
    return "UCS-2", [2 if ord(char) > 0xFFFF else 1 for char in body]


def estimate_segments(body: str) -> SegmentEstimate:
    """Estimate how many SMS segments `body` is sent as, and in which encoding.

    A character never straddles two parts (an escaped GSM-7 character or a UTF-16
    surrogate pair moves whole to the next part), as phones do.
    """
    encoding, widths = _widths(body)
    units = sum(widths)
    single, part = (_GSM7_SINGLE, _GSM7_PART) if encoding == "GSM-7" else (_UCS2_SINGLE, _UCS2_PART)
    if units <= single:
        return SegmentEstimate(
            encoding=encoding, segments=1 if units else 0, units=units, units_per_segment=single
        )
    segments, used = 1, 0
    for width in widths:
        if used + width > part:
            segments, used = segments + 1, 0
        used += width
    return SegmentEstimate(
        encoding=encoding, segments=segments, units=units, units_per_segment=part
    )
