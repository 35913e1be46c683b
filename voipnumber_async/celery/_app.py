"""The Celery settings campaigns need, and a Celery app made with them.

Why each setting (docs/campaigns.md says the same to users):

- `task_acks_late` + `task_reject_on_worker_lost`: a chunk's message is acknowledged
  only once the chunk is done; a worker process that dies mid-chunk (SIGKILL, OOM)
  puts it back, and another runs it (its journal skips what was sent).
- `worker_prefetch_multiplier=1`: a worker holds one chunk per process, not four; a
  prefetched chunk is one the broker counts as taken, and its visibility timer runs.
- `broker_transport_options.visibility_timeout`: the Redis broker hands a chunk to
  another worker once it has been unacknowledged this long, believing its worker
  dead. It must outlast the longest chunk (`longest_chunk_s`), or a chunk still
  running is sent twice at once (the keys keep the service from sending a message
  twice, but the account's rate is spent twice).
- JSON only: a task's arguments are data, never pickles.
"""

from __future__ import annotations

import os
from typing import Any, Final

from celery import Celery

from .._config import DEFAULT_REDIS_URL, ENV_BROKER_URL, ENV_REDIS_URL

__all__ = [
    "CELERY_SETTINGS",
    "VISIBILITY_TIMEOUT_S",
    "configure",
    "create_app",
    "longest_chunk_s",
    "redis_url_of",
]

#: The Redis broker's visibility timeout for campaign apps: Celery's own default (an
#: hour), stated, since every chunk must end well within it.
VISIBILITY_TIMEOUT_S: Final = 3600

CELERY_SETTINGS: Final[dict[str, Any]] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "task_serializer": "json",
    "accept_content": ["json"],
    "result_serializer": "json",
    "task_ignore_result": True,
    "broker_connection_retry_on_startup": True,
    "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_S},
}
"""The settings `configure` applies (a Celery app of yours can take them as they are)."""

#: The app setting (`app.conf`) holding the Redis of journals and pacers.
REDIS_SETTING: Final = "voipnumber_redis_url"


def redis_url_of(app: Celery | None = None) -> str:
    """The Redis of campaigns: the app's `voipnumber_redis_url`, else `$VOIPNUMBER_REDIS_URL`."""
    configured = app.conf.get(REDIS_SETTING) if app is not None else None
    return str(configured or os.environ.get(ENV_REDIS_URL) or DEFAULT_REDIS_URL)


def configure(app: Celery, *, redis: str | None = None) -> Celery:
    """Apply `CELERY_SETTINGS` to `app`, and name the Redis of journals and pacers.

    Args:
        app: Your Celery app (its broker is yours to choose: Redis, RabbitMQ, ...).
        redis: A redis:// URL for journals and pacers; default `$VOIPNUMBER_REDIS_URL`.

    Returns:
        `app`, configured.
    """
    app.conf.update(CELERY_SETTINGS)
    if redis is not None:
        app.conf[REDIS_SETTING] = redis
    # The task is a shared_task: importing it binds it to every app, this one included.
    from . import _tasks  # noqa: F401, PLC0415

    return app


def create_app(broker: str | None = None, *, redis: str | None = None) -> Celery:
    """A Celery app for campaigns, its broker and state in Redis.

    Args:
        broker: The broker URL; default `$VOIPNUMBER_BROKER_URL`, else the Redis.
        redis: The Redis of journals and pacers; default `$VOIPNUMBER_REDIS_URL`, else
            `redis://127.0.0.1:6379/0`.
    """
    state = redis or os.environ.get(ENV_REDIS_URL) or DEFAULT_REDIS_URL
    app = Celery("voipnumber", broker=broker or os.environ.get(ENV_BROKER_URL) or state)
    return configure(app, redis=state)


def longest_chunk_s(chunk_size: int, rate: float, processes: int) -> float:
    """The longest a chunk takes when `processes` chunks share the rate, in seconds.

    Each of `processes` chunks running at once gets `rate / processes` messages a
    second (retries and 429 pauses come on top).
    """
    return chunk_size * max(1, processes) / rate
