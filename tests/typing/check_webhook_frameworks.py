"""The framework receivers as users type them; checked by `nox -s mypy`, never run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from django.http import HttpResponse
from fastapi import FastAPI
from flask import Flask, Response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route
from typing_extensions import assert_type

from voipnumber_async.webhooks import (
    Claim,
    InboundMessage,
    MemoryDeliveryStore,
    SyncDeliveryStore,
    SyncMemoryDeliveryStore,
)
from voipnumber_async.webhooks.django import webhook_view as django_view
from voipnumber_async.webhooks.flask import webhook_view as flask_view
from voipnumber_async.webhooks.starlette import webhook_endpoint, webhook_route


def save(message: InboundMessage) -> None:
    print(message.mdr_id)


async def save_async(message: InboundMessage) -> None:
    print(message.mdr_id)


class Table:
    """A SyncDeliveryStore of one's own, over a database."""

    def claim(self, mdr_id: str) -> Claim:
        return "new"

    def complete(self, mdr_id: str) -> None: ...

    def release(self, mdr_id: str) -> None: ...


def blocking() -> None:
    store: SyncDeliveryStore = Table()
    assert_type(django_view(save, secret="s", store=store), Callable[..., HttpResponse])
    view = flask_view(save, secret=["old", "new"], store=SyncMemoryDeliveryStore())
    assert_type(view, Callable[..., Response])
    Flask(__name__).add_url_rule("/webhooks/voipnumber", view_func=view)


def asgi() -> None:
    endpoint = webhook_endpoint(save_async, secret="s", store=MemoryDeliveryStore())
    assert_type(endpoint, Callable[[Request], Awaitable[StarletteResponse]])
    FastAPI().add_api_route("/webhooks/voipnumber", endpoint, methods=["POST"])
    route = webhook_route("/hooks/{secret}", save_async, secret="s", expected_host=None)
    assert_type(route, Route)
    Starlette(routes=[route])
