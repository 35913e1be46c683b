"""Defaults, environment variable names and the values that configure a client.

Every default a caller can change is a named constant here, so the documentation and
the code cannot disagree about it.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._errors import ConfigurationError

ENV_ACCOUNT_ID = "VOIPNUMBER_ACCOUNT_ID"
ENV_API_TOKEN = "VOIPNUMBER_API_TOKEN"  # noqa: S105 - the variable's name, not a token
ENV_BASE_URL = "VOIPNUMBER_BASE_URL"
#: Where campaigns keep their journals and accounts their shared pacers (a redis:// URL).
ENV_REDIS_URL = "VOIPNUMBER_REDIS_URL"
#: The Celery broker of campaign workers; by default the Redis of `ENV_REDIS_URL`.
ENV_BROKER_URL = "VOIPNUMBER_BROKER_URL"
#: The Redis of campaigns when neither the caller nor the environment names one.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

DEFAULT_BASE_URL = "https://api.voipnumber.net"
DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_CONNECTIONS = 100
#: The largest answer read from the service, in bytes (a documented one is ~200): a
#: larger one is an `UnexpectedResponseError`, checked while reading.
MAX_ANSWER_BYTES = 1024 * 1024

LOGGER_NAME = "voipnumber"


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value > 0:
        raise ValueError(
            f"Timeout.{attribute.name} must be a positive number of seconds or None, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class Timeout:
    """How long one attempt may take, in seconds; `None` means no limit for that phase.

    The phases are told apart because they mean different things for a message:

    - `connect`: opening a connection. When it runs out, nothing was sent, so the
      failure is an `APIConnectionError` and is retried. A request that waits for a
      free connection of the pool (`max_connections`) waits before its timeout starts.
    - `read`: the longest silence while waiting for the answer. When it runs out the
      request was sent, so the outcome is unknown (`OutcomeUnknownError`).
    - `total`: the whole attempt. When it runs out the outcome is unknown too.

    Retries get a fresh `Timeout` each; `RetryPolicy.deadline` bounds them all.
    """

    total: float | None = attrs.field(default=30.0, validator=_positive_or_none)
    connect: float | None = attrs.field(default=10.0, validator=_positive_or_none)
    read: float | None = attrs.field(default=None, validator=_positive_or_none)

    @classmethod
    def coerce(cls, value: float | Timeout) -> Timeout:
        """Return `value` as a `Timeout`; a number is the `total` with the default connect limit.

        Raises:
            ConfigurationError: `value` is neither a positive number nor a `Timeout`.
        """
        if isinstance(value, Timeout):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigurationError(
                f"timeout must be a positive number of seconds or a Timeout, got {value!r}",
                field="timeout",
            )
        connect = DEFAULT_TIMEOUT.connect
        return cls(
            total=float(value), connect=None if connect is None else min(connect, float(value))
        )


DEFAULT_TIMEOUT = Timeout()
