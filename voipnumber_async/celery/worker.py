"""The Celery app of `voipnumber worker`: `celery -A voipnumber_async.celery.worker worker`.

Its broker is `$VOIPNUMBER_BROKER_URL` (else `$VOIPNUMBER_REDIS_URL`), its journals and
pacers in `$VOIPNUMBER_REDIS_URL` (default `redis://127.0.0.1:6379/0`); the account's
credentials are read from the environment as the client reads them.
"""

from ._app import create_app

__all__ = ["app"]

app = create_app()
