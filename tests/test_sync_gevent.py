"""The sync facade under gevent: greenlets making their first calls at once do not hang.

`gunicorn -k gevent --preload` imports the application, and so `voipnumber_sync`,
before gevent patches threading; a real OS lock held across a wait that yields to the
gevent hub hung every greenlet of the worker. Monkey-patching cannot be undone, so each
case runs in a process of its own, against the test's sandbox; a hang fails by timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from voipnumber_async.sandbox import Sandbox

GREENLETS, SENDS = 8, 5

SCRIPT = f"""
import sys
if sys.argv[1] == "patched-before-import":
    from gevent import monkey
    monkey.patch_all()
    from voipnumber_sync import VoipNumber
else:  # as gunicorn --preload imports the application before patching
    from voipnumber_sync import VoipNumber
    from gevent import monkey
    monkey.patch_all()
import gevent

client = VoipNumber()

def sender(n):
    return [client.sms.send("+447445459147", "+447483866525", f"{{n}}-{{i}}").id
            for i in range({SENDS})]

greenlets = [gevent.spawn(sender, n) for n in range({GREENLETS})]  # all first calls at once
gevent.joinall(greenlets, raise_error=True)
ids = [message_id for greenlet in greenlets for message_id in greenlet.value]
client.close()
print(len(ids), len(set(ids)))
"""


@pytest.mark.parametrize("order", ["imported-before-patching", "patched-before-import"])
def test_greenlets_making_their_first_calls_at_once_are_all_answered(
    voipnumber_sandbox: Sandbox, tmp_path: Path, order: str
) -> None:
    script = tmp_path / "greenlets.py"
    script.write_text(SCRIPT)

    done = subprocess.run(  # a hang, as before the fix, fails here by its timeout
        [sys.executable, "-W", "ignore", str(script), order],
        env={**os.environ, **voipnumber_sandbox.env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(GREENLETS * SENDS)] * 2  # every send, distinct ids
    assert voipnumber_sandbox.accepted_count == GREENLETS * SENDS
