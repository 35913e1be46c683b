"""Campaigns on Celery workers (`pip install "voipnumber[celery]"`).

```py
from voipnumber_async.celery import create_app, start_campaign

app = create_app()  # broker and state in $VOIPNUMBER_REDIS_URL
await start_campaign(app, "spring-sale", messages, options=ChunkOptions(rate=50))
```

Workers: `voipnumber worker` (or `celery -A voipnumber_async.celery.worker worker`),
each with the account's credentials in its environment. Status from anywhere:
`RedisJournal(url, "spring-sale").status()`, or `voipnumber campaign status`.
An app of your own takes the task with `configure(app)`.
"""

from ..campaigns import ChunkOptions
from ._app import CELERY_SETTINGS, VISIBILITY_TIMEOUT_S, configure, create_app, longest_chunk_s
from ._start import CampaignStart, start_campaign
from ._tasks import SEND_CHUNK, send_chunk

__all__ = [
    "CELERY_SETTINGS",
    "SEND_CHUNK",
    "VISIBILITY_TIMEOUT_S",
    "CampaignStart",
    "ChunkOptions",
    "configure",
    "create_app",
    "longest_chunk_s",
    "send_chunk",
    "start_campaign",
]
