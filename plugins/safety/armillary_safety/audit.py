"""The verdict audit: every verdict any guard reaches, stored and published.

The kernel hands each verdict to the pipeline's listeners as a `VerdictRecord` (stage,
action, checks, code, flags, the guard's ids — never the checked text). `Audit` is that
listener: it appends the record to the store as an item of the conversation named by the
guard's scope (kind `safety`: a run id, a `/chat` conversation id, a session id, or the
`grd_…` id of a guard with none), keeps the newest in memory for the unfiltered listing,
and publishes a `safety.verdict` event on the bus topic `safety` and the firehose.
"""

from __future__ import annotations

import collections
import itertools
import logging
from typing import Any

from armillary import (
    FIREHOSE,
    ConversationItem,
    ConversationPolicy,
    Conversations,
    Event,
    Kernel,
    VerdictRecord,
    new_id,
)
from armillary_safety.settings import SafetySettings

log = logging.getLogger("armillary.safety")

KIND = "safety"
TOPIC = "safety"
EVENT = "safety.verdict"


#: `safety.verdict`'s payload: one verdict, as the kernel's guards hand it to listeners
VerdictPayload = VerdictRecord


def store_policy(settings: SafetySettings) -> ConversationPolicy:
    return ConversationPolicy(ttl_seconds=settings.audit_ttl_seconds,
                              max_items=settings.audit_max_entries,
                              max_conversations=settings.audit_max_scopes)


def entries(kernel: Kernel, settings: SafetySettings) -> Conversations:
    return kernel.conversations(KIND, store_policy(settings))


class Audit:
    """The pipeline listener (see the module docstring)."""

    def __init__(self, kernel: Kernel, settings: SafetySettings) -> None:
        self.kernel = kernel
        self.entries = entries(kernel, settings)
        self.recent: collections.deque[VerdictRecord] = collections.deque(
            maxlen=settings.audit_recent)
        self._seq = itertools.count(1)

    async def __call__(self, record: VerdictRecord) -> None:
        entry: dict[str, Any] = record.model_dump(mode="json")
        self.recent.append(record)
        await self.entries.append(record.scope, ConversationItem(
            role="verdict", content="", at=record.at, data=entry))
        event = Event(id=new_id("evt_"), run_id=record.scope, seq=next(self._seq),
                      type=EVENT, ts=record.at, payload=entry)
        for topic in (TOPIC, FIREHOSE):
            try:
                await self.kernel.bus.publish(topic, event)
            except Exception:  # the stored entry is what counts; the bus is best effort
                log.debug("publishing %s on %r failed", EVENT, topic, exc_info=True)
