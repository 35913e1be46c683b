"""`POST /sandbox/inbound`: orders to deliver (or redeliver) an inbound message, checked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from voipnumber_async.sandbox import INBOUND_TRIGGER_PATH, Sandbox

NUMBER = "+447476553275"
SENDER = "+447483866525"


class Webhook:
    """A receiver that records the JSON of every delivery and answers 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.json_response({"status": "accepted"})


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield hook
    await runner.cleanup()


@pytest.fixture
async def service(webhook: Webhook) -> AsyncIterator[Sandbox]:
    async with Sandbox(webhooks={NUMBER: webhook.url}) as sandbox:
        yield sandbox


async def order(
    sandbox: Sandbox, body: Any, content_type: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            sandbox.base_url + INBOUND_TRIGGER_PATH,
            data=data,
            headers={"Content-Type": content_type},
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_an_order_delivers_a_new_message_to_the_numbers_webhook(
    service: Sandbox, webhook: Webhook
) -> None:
    status, answer = await order(service, {"to": NUMBER, "from": SENDER, "body": "Hello"})

    assert status == 200
    assert answer == {"mdr_id": answer["mdr_id"], "status": 200, "attempt": 1, "error": None}
    (delivered,) = webhook.received
    assert (delivered["to"], delivered["from"], delivered["body"]) == (NUMBER, SENDER, "Hello")
    assert (delivered["type"], delivered["mdr_id"]) == ("sms", answer["mdr_id"])


async def test_the_same_order_with_its_mdr_id_redelivers_that_message(
    service: Sandbox, webhook: Webhook
) -> None:
    # The flow of docs/cli.md: the same order again, now with the mdr_id it was given.
    first_order = {"to": NUMBER, "body": "Hello", "from": SENDER}
    _, first = await order(service, first_order)

    status, again = await order(service, {**first_order, "mdr_id": first["mdr_id"]})

    assert status == 200
    assert (again["mdr_id"], again["attempt"], again["status"]) == (first["mdr_id"], 2, 200)
    original, redelivered = webhook.received
    assert redelivered == original  # the same message: same mdr_id, body, timestamps
    assert [d.attempt for d in service.deliveries] == [1, 2]


async def test_an_mdr_id_alone_is_enough_to_redeliver(service: Sandbox, webhook: Webhook) -> None:
    _, first = await order(service, {"to": NUMBER, "body": "Hello"})

    status, again = await order(service, {"mdr_id": first["mdr_id"]})
    _, third = await order(service, {"mdr_id": first["mdr_id"]})

    assert status == 200
    assert (again["attempt"], third["attempt"]) == (2, 3)
    assert [hook["mdr_id"] for hook in webhook.received] == [first["mdr_id"]] * 3


async def test_a_delivery_made_from_python_can_be_redelivered_by_its_mdr_id(
    service: Sandbox, webhook: Webhook
) -> None:
    delivery = await service.deliver_inbound(NUMBER, "from a test", mdr_id="mdr-1")

    status, again = await order(service, {"mdr_id": "mdr-1"})

    assert (status, again["attempt"]) == (200, 2)
    assert webhook.received[1]["body"] == delivery.message.body == "from a test"


async def test_an_unknown_mdr_id_is_a_404_that_says_so(service: Sandbox, webhook: Webhook) -> None:
    status, answer = await order(service, {"to": NUMBER, "mdr_id": "never-delivered"})

    assert status == 404
    assert "no delivery has mdr_id 'never-delivered'" in answer["error"]
    assert "leave 'mdr_id' out to deliver a new message" in answer["error"]
    assert webhook.received == []


async def test_a_redelivery_that_changes_the_message_is_refused_with_the_field(
    service: Sandbox, webhook: Webhook
) -> None:
    _, first = await order(service, {"to": NUMBER, "body": "Hello"})

    status, answer = await order(service, {"mdr_id": first["mdr_id"], "body": "Goodbye"})

    assert status == 409
    assert answer["error"].startswith(
        f"mdr_id {first['mdr_id']!r} was delivered with 'body' 'Hello', not 'Goodbye'"
    )
    assert len(webhook.received) == 1


async def test_reset_forgets_the_mdr_ids_it_could_redeliver(service: Sandbox) -> None:
    _, first = await order(service, {"to": NUMBER})
    service.reset()

    status, _ = await order(service, {"mdr_id": first["mdr_id"]})

    assert status == 404


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "the order is not valid JSON"),
        (b"[" * 100_000, 400, "the order is not valid JSON (JSON nested too deeply"),
        (b"\xff\xfe{", 400, "the order is not valid JSON"),
        ([NUMBER], 400, "the order must be a JSON object such as {"),
        ({}, 400, "the order has no 'to': the number the message is for"),
        ({"body": "Hi"}, 400, "the order has no 'to'"),
        ({"to": None}, 400, "'to' must be an E.164 number as a string, such as "),
        ({"to": 447476553275}, 400, "'to' must be an E.164 number as a string, such as "
         "'+447476553275', got the number 447476553275"),
        ({"to": "07476 553275"}, 400, "'to' must be an E.164 number as a string, such as "
         "'+447476553275', got '07476 553275'"),
        ({"to": NUMBER, "from": "sandbox"}, 400, "'from' must be an E.164 number"),
        ({"to": NUMBER, "body": 42}, 400, "'body' must be a string, the text of the message, "
         "got the number 42"),
        ({"to": NUMBER, "body": ["a"]}, 400, "'body' must be a string, the text of the "
         "message, got an array"),
        ({"to": NUMBER, "type": True}, 400, "'type' must be a string, 'sms' or 'mms', got "
         "the boolean true"),
        ({"to": NUMBER, "type": ""}, 400, "'type' must be 'sms' or 'mms', got ''"),
        ({"to": NUMBER, "text": "Hi"}, 400, "unknown field 'text' in the order: the fields "
         "are to, from, body, type, mdr_id"),
        ({"to": NUMBER, "mdr_id": ""}, 400, "'mdr_id' must be a non-empty string"),
        ({"to": NUMBER, "mdr_id": 7}, 400, "'mdr_id' must be a non-empty string, the mdr_id "
         "of a delivery to redeliver, got the number 7"),
        ({"to": "+447700900123"}, 400, "'to' +447700900123 has no webhook (numbers with one: "
         f"{NUMBER}): give it one with voipnumber sandbox --webhook +447700900123=URL"),
    ],
)  # fmt: skip
async def test_a_malformed_order_is_a_400_naming_what_is_wrong(
    service: Sandbox, webhook: Webhook, body: Any, status: int, error: str
) -> None:
    answer_status, answer = await order(service, body)

    assert answer_status == status
    assert set(answer) == {"error"}
    assert answer["error"].startswith(error), answer["error"]
    assert (webhook.received, service.delivery_count) == ([], 0)


async def test_a_long_value_is_not_echoed_back_whole(service: Sandbox) -> None:
    status, answer = await order(service, {"to": "x" * 100_000})

    assert status == 400
    assert "(100000 characters)" in answer["error"]
    assert len(answer["error"]) < 300


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
async def test_an_order_not_sent_as_json_is_a_415_saying_how_to_send_it(
    service: Sandbox, webhook: Webhook, content_type: str
) -> None:
    status, answer = await order(service, {"to": NUMBER}, content_type=content_type)

    assert status == 415
    assert f"got {content_type!r}" in answer["error"]
    assert "-H 'Content-Type: application/json'" in answer["error"]
    assert webhook.received == []


async def test_a_json_content_type_with_a_charset_is_json(
    service: Sandbox, webhook: Webhook
) -> None:
    status, _ = await order(service, {"to": NUMBER}, content_type="application/json; charset=utf-8")

    assert status == 200
    assert len(webhook.received) == 1
