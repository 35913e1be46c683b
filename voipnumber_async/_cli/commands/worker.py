"""`voipnumber worker`: a Celery worker with the campaign task, on the Redis of campaigns."""

from __future__ import annotations

from typing import Any

import click

from .campaign import redis_option

__all__ = ["worker"]


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--concurrency", "-c", type=click.IntRange(min=1), default=1, show_default=True,
    help="Worker processes (Celery's prefork pool): each sends one chunk at a time.",
)  # fmt: skip
@click.option("--queue", "-Q", "queues", help="The Celery queues to read (default: the app's).")
@click.option("--loglevel", "-l", default="info", show_default=True)
@click.option("--broker", envvar="VOIPNUMBER_BROKER_URL", show_envvar=True,
              help="The Celery broker (default: the Redis of --redis).")  # fmt: skip
@redis_option
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(  # noqa: PLR0917 - click passes every option as an argument
    concurrency: int,
    queues: str | None,
    loglevel: str,
    broker: str | None,
    redis_url: str,
    celery_args: tuple[str, ...],
) -> None:
    """Run a Celery worker that sends campaign chunks (`celery worker` with our app).

    The account comes from the environment: VOIPNUMBER_ACCOUNT_ID, VOIPNUMBER_API_TOKEN
    (and VOIPNUMBER_BASE_URL), read by every chunk; never from a task. Other arguments
    after `--` go to `celery worker` as they are. The same as
    `celery -A voipnumber_async.celery.worker worker --pool prefork -c N`.
    """
    from ...celery import create_app  # noqa: PLC0415

    app = create_app(broker, redis=redis_url)
    arguments: list[Any] = ["worker", "--pool", "prefork", "--concurrency", str(concurrency)]
    arguments += ["--loglevel", loglevel]
    if queues:
        arguments += ["--queues", queues]
    app.worker_main([*arguments, *celery_args])
