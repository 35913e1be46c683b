"""What a sandbox knows, remembers and counts: accounts, records, counts, faults, keys.

`SandboxState` holds it all; `Sandbox` (`_runner`) is this state served over HTTP, the
handlers of `_app` and the deliveries of `_delivery` read and change it. Its underscore
attributes are for those modules, not for users.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Final, Literal

from ._accounts import SandboxAccount, default_accounts
from ._faults import Fault, FaultQueue
from ._idempotency import IdempotencyStore
from ._limits import AccountLimiter, check_rate_limit
from ._records import AcceptedMessage, Delivery, LastDelivery, Recent, RecentMap, RecordedRequest

__all__ = ["DEFAULT_KEEP_KEYS", "SandboxState"]

#: How many of the most recent idempotency keys (and inbound `mdr_id`s) a sandbox
#: remembers by default: a million, about 190 MiB when full (`docs/sandbox.md`), so that a
#: bulk run of a million messages resumes against it with every key still known.
DEFAULT_KEEP_KEYS: Final = 1_000_000


class SandboxState:
    """The accounts, records, counts, faults and keys of a sandbox (see `Sandbox`)."""

    def __init__(
        self,
        *,
        accounts: Iterable[SandboxAccount] | None = None,
        envelope: Literal["single", "nested"] = "single",
        seed: int | None = None,
        record: bool = True,
        webhooks: Mapping[str, str] | None = None,
        keep: int | None = None,
        keep_keys: int | None = DEFAULT_KEEP_KEYS,
        rate_limit: float | None = None,
    ) -> None:
        check_rate_limit(self, None, rate_limit)
        _check_bound("keep", keep, "records of each kind kept")
        _check_bound("keep_keys", keep_keys, "keys remembered")
        self.accounts = {
            account.account_id: account for account in (accounts or default_accounts())
        }
        self._number_owners = {
            number: account.account_id
            for account in self.accounts.values()
            for number in account.numbers
        }
        self.envelope = envelope
        #: Sends a second per account (unless the account has its own) before 429s.
        self.rate_limit = rate_limit
        # Each limited account's limiter, made at its first send.
        self._limiters: dict[str, AccountLimiter] = {}
        self.record = record
        self.keep = keep
        self.keep_keys = keep_keys
        self.webhooks: dict[str, str] = dict(webhooks or {})
        self.requests: Recent[RecordedRequest] = Recent(maxlen=keep)
        self.messages: Recent[AcceptedMessage] = Recent(maxlen=keep)
        self.deliveries: Recent[Delivery] = Recent(maxlen=keep)
        self.in_flight = 0
        self.peak_in_flight = 0
        self._reset_counts()
        self._faults = FaultQueue(seed)
        self._answers = IdempotencyStore(keep_keys)
        self._inbound: RecentMap[str, LastDelivery] = RecentMap(keep_keys)

    def _reset_counts(self) -> None:
        #: Requests to send a message, answered or not.
        self.request_count = 0
        #: Messages accepted: what a real service would have sent.
        self.accepted_count = 0
        #: Requests answered with the stored first answer of their idempotency key.
        self.replayed_count = 0
        #: Inbound deliveries made, redeliveries included.
        self.delivery_count = 0
        #: Requests by the HTTP status answered; `None` counts dropped connections.
        self.status_counts: Counter[int | None] = Counter()
        #: The sandbox's own refusals by error code (`MESSAGE_INVALID`, ...).
        self.error_counts: Counter[str] = Counter()
        #: Requests hit by each injected fault.
        self.fault_counts: Counter[Fault] = Counter()

    def _limiter(self, account: SandboxAccount) -> AccountLimiter | None:
        """`account`'s rate limiter, or None when it has no limit."""
        limiter = self._limiters.get(account.account_id)
        if limiter is None:
            rate = account.rate_limit if account.rate_limit is not None else self.rate_limit
            if rate is None:
                return None
            limiter = self._limiters[account.account_id] = AccountLimiter(rate)
        return limiter

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each hits the next `fault.times` requests, in order."""
        self._faults.add(*faults)

    def clear_faults(self) -> None:
        """Drop every fault still queued."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many injected faults have hits left."""
        return len(self._faults)

    @property
    def remembered_keys(self) -> int:
        """How many idempotency keys it remembers now (at most `keep_keys`)."""
        return len(self._answers)

    def reset(self) -> None:
        """Forget records, counts, faults, stored idempotent answers and `mdr_id`s."""
        self.requests.clear()
        self.messages.clear()
        self.deliveries.clear()
        self._reset_counts()
        self.peak_in_flight = self.in_flight
        self._faults.clear()
        self._answers.clear()
        self._inbound.clear()
        self._limiters.clear()

    def messages_by_key(self) -> dict[str | None, list[AcceptedMessage]]:
        """Accepted messages grouped by idempotency key: a key with two is a duplicate.

        Of the messages kept (`keep`): a duplicate of a message no longer kept is not seen.
        """
        grouped: dict[str | None, list[AcceptedMessage]] = {}
        for message in self.messages:
            grouped.setdefault(message.idempotency_key, []).append(message)
        return grouped


def _check_bound(name: str, value: int | None, what: str) -> None:
    if value is not None and (not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be an int >= 0 ({what}) or None (all), got {value!r}")
