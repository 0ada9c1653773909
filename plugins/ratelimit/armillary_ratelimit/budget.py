"""`TokenBudget`: model tokens per key per window, reserved before a model-using request
and settled by the kernel's `provider.call` events.

One counter per key in the `limits` storage (memory, or the Redis the request limits
use), a fixed window: it holds the tokens spent in the window plus the reservations still
open. A request reserves `reserve_tokens` with one atomic increment; when that takes the
counter past `tokens_per_window` the reservation is given back and the request refused.
A `provider.call` event for the key (its `owner`) settles the key's oldest open
reservation: the counter moves by `actual - reserved` (the tokens it used, the unused
reservation returned). A call with no open reservation (a run's second step) is charged
its tokens. A call that reports no usage is charged `reserve_tokens`.

A reservation no call settles is released: at the end of the response for a route that
answers in the request (`/chat`), at the end of a refused (≥ 400) response, or after
`reservation_ttl_s` for a route that starts a run (its calls come after the 202).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from armillary import FIREHOSE, Event, Kernel, Subscription
from armillary_ratelimit.settings import RateLimitSettings

log = logging.getLogger(__name__)

#: how often expired run-route reservations are released when no event comes
SWEEP_S = 1.0


@dataclass
class Reservation:
    owner: str
    amount: int
    #: monotonic time after which it is released unsettled (None: at response end)
    expires: float | None = None
    open: bool = True


@dataclass
class Usage:
    """The counter after a reservation attempt, for the answer's headers."""

    used: int
    limit: int
    reset_s: int
    window_s: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


class TokenBudget:
    def __init__(self, settings: RateLimitSettings, storage: Any) -> None:
        from limits import parse

        assert settings.tokens_per_window is not None
        self.settings = settings
        self.storage = storage
        self.item = parse(f"{settings.tokens_per_window} per {settings.token_window}")
        self.reserve_tokens = settings.reserve_tokens
        #: each key's open reservations in this process, oldest first
        self.open: dict[str, deque[Reservation]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None

    def _key(self, owner: str) -> str:
        return str(self.item.key_for(self.settings.key_prefix, "tokens", owner))

    async def _add(self, owner: str, amount: int) -> int:
        """Move the key's counter by `amount` (never below 0); the new value."""
        if amount == 0:
            return await self.used(owner)
        key, expiry = self._key(owner), self.item.get_expiry()
        value = int(await self.storage.incr(key, expiry, amount=amount))
        if value < 0:  # a reservation from the last window given back in this one
            value = int(await self.storage.incr(key, expiry, amount=-value))
        return value

    async def used(self, owner: str) -> int:
        """The key's counter now: tokens spent in the window plus open reservations."""
        return int(await self.storage.get(self._key(owner)))

    async def usage(self, owner: str, used: int) -> Usage:
        expiry = self.item.get_expiry()
        reset = await self.storage.get_expiry(self._key(owner))
        return Usage(used=used, limit=self.item.amount,
                     reset_s=max(1, min(expiry, int(reset - time.time() + 0.999))),
                     window_s=expiry)

    async def reserve(self, owner: str, *, hold: bool) -> tuple[Reservation | None, Usage]:
        """Reserve `reserve_tokens` for `owner`, or None (refused) when that would take
        the counter past the budget. `hold`: kept until a call settles it or the TTL."""
        await self.sweep()
        amount = self.reserve_tokens
        used = await self._add(owner, amount)
        if used > self.item.amount:
            used = await self._add(owner, -amount)
            return None, await self.usage(owner, used)
        expires = time.monotonic() + self.settings.reservation_ttl_s if hold else None
        reservation = Reservation(owner, amount, expires)
        self.open.setdefault(owner, deque()).append(reservation)
        return reservation, await self.usage(owner, used)

    async def release(self, reservation: Reservation) -> None:
        """Give an unsettled reservation back (no call settled it)."""
        if not reservation.open:
            return
        reservation.open = False
        queue = self.open.get(reservation.owner)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(reservation)
            if not queue:
                del self.open[reservation.owner]
        await self._add(reservation.owner, -reservation.amount)

    async def settle(self, payload: dict[str, Any]) -> None:
        """A `provider.call` payload: charge its tokens to its owner, settling the
        owner's oldest open reservation."""
        owner = payload.get("owner")
        if not isinstance(owner, str) or not owner:
            return  # no principal (auth off): nothing to charge
        prompt, completion = payload.get("prompt_tokens"), payload.get("completion_tokens")
        if isinstance(prompt, int) or isinstance(completion, int):
            tokens = (prompt if isinstance(prompt, int) else 0) + \
                (completion if isinstance(completion, int) else 0)
        else:  # the provider reported no usage: charge the estimate
            tokens = self.reserve_tokens
        reserved = 0
        queue = self.open.get(owner)
        if queue:
            reservation = queue.popleft()
            reservation.open = False
            reserved = reservation.amount
            if not queue:
                del self.open[owner]
        await self._add(owner, tokens - reserved)

    async def sweep(self) -> None:
        """Release the held reservations whose TTL passed."""
        now = time.monotonic()
        expired = [r for queue in self.open.values() for r in queue
                   if r.expires is not None and r.expires <= now]
        for reservation in expired:
            await self.release(reservation)

    # --- following the firehose --------------------------------------------------------

    async def start(self, kernel: Kernel) -> None:
        self._subscription = kernel.bus.subscribe(FIREHOSE)
        self._task = asyncio.create_task(self._follow(self._subscription),
                                         name="ratelimit-token-budget")

    async def _follow(self, subscription: Subscription) -> None:
        swept = time.monotonic()
        while not subscription.closed:
            event: Event | None = await subscription.get(timeout=SWEEP_S)
            try:
                if event is not None and event.type == "provider.call":
                    await self.settle(event.payload)
                # every run's token events come through here too: sweep once per SWEEP_S,
                # not once per event
                if self.open and time.monotonic() - swept >= SWEEP_S:
                    swept = time.monotonic()
                    await self.sweep()
            except Exception as exc:  # the storage is down: this call goes uncharged
                log.warning("token budget: could not settle a provider call (%s: %s)",
                            type(exc).__name__, exc)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
