"""The shared secret a webhook URL carries: held out of sight, compared in constant time.

Error trackers (Sentry's defaults, `rich` tracebacks with locals, `pytest -l`) record the
locals of every frame an exception passes through, so no frame that can be on a
traceback holds a secret as a plain value: the secrets live inside a `Secrets`, whose
repr is redacted and whose one attribute is a slot, and the checks below return a
verdict instead of raising from a frame whose locals hold the secret or the URL.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import final
from urllib.parse import parse_qsl, urlsplit

from .._errors import InvalidSecretError

__all__ = ["Secrets", "empty_secret", "secret_refused"]


def empty_secret() -> ValueError:
    """The error for a `secret=` that is empty, or holds an empty one, where it is given."""
    return ValueError(
        "an empty secret would accept every delivery: pass a non-empty string (or several), "
        "or secret=None to skip the check"
    )


@final
class Secrets:
    """One secret or several, any of which a delivery's URL may carry (to rotate it).

    Make one with `Secrets.of`; it shows as `<Secrets: 2, redacted>`.
    """

    __slots__ = ("_values",)

    def __init__(self, values: tuple[bytes, ...]) -> None:
        self._values = values

    @classmethod
    def of(cls, secret: str | Iterable[str]) -> Secrets | None:
        """The secret, or each of several; None if there is none, or one is empty.

        None rather than an error: the caller raises `empty_secret()` once the
        secret it was given is out of its locals.
        """
        try:
            given = (secret,) if isinstance(secret, str) else tuple(secret)
        except TypeError:  # not iterable: no secret at all
            return None
        if not given or not all(isinstance(s, str) and s for s in given):
            return None
        # surrogatepass: any str encodes, so comparing never raises.
        return cls(tuple(s.encode("utf-8", "surrogatepass") for s in given))

    def __repr__(self) -> str:
        return f"<Secrets: {len(self._values)}, redacted>"

    def carried_by(self, candidates: Iterable[str]) -> bool:
        """Whether one of `candidates` (from the delivery's URL) is one of the secrets."""
        # Every candidate is compared with every secret, so the time taken says nothing of
        # where a match is, nor of which secret matched.
        matched = False
        for candidate in candidates:
            given = candidate.encode("utf-8", "surrogatepass")
            for value in self._values:
                matched |= hmac.compare_digest(given, value)
        return matched

    def carried_by_url(self, url: str, secret_param: str) -> bool:
        """Whether `url` carries a secret as a path segment or as `?{secret_param}=`."""
        try:
            parts = urlsplit(url)
        except ValueError:  # "http://[": no URL, so no secret in it
            return False
        candidates = [segment for segment in parts.path.split("/") if segment]
        candidates += [value for name, value in parse_qsl(parts.query) if name == secret_param]
        return self.carried_by(candidates)


def secret_refused(secret_param: str) -> InvalidSecretError:
    """The error for a delivery whose URL does not carry the secret."""
    return InvalidSecretError(
        "the webhook URL does not carry the shared secret "
        f"(as a path segment or as ?{secret_param}=)"
    )
