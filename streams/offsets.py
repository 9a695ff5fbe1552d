"""The commit rule, per partition: never commit past a record that was consumed and is not yet settled.

Kafka's committed offset of a partition is where a restarted (or new) owner starts reading. A record
is *settled* when every output of its window is written (InfluxDB stored its points, Kafka accepted
its records, its alert state went to the changelog). The rule kept here, per partition and
assignment:

    committed offset <= the lowest offset accepted and not yet settled,
    and <= the next offset to accept (the records from the commit up to it were each accepted once).

So a window in flight, a window whose write failed and waits for its retry, and a window dropped
because its partition was revoked all stay at or above the committed offset: a crash or the next
owner replays them; nothing is skipped because the consumer had already read past it.

Why not Faust's own rule (``Consumer._new_offset`` in faust-streaming 0.15.3): it commits the first
consecutive run of *acknowledged* offsets and checks that run against the committed offset only when
one is known and non-zero, and then lets exactly one unacknowledged head offset through (upstream
issue #606). After every assignment that offset is unknown until the first commit, so an
acknowledgement that is not a settlement (Faust acks records its stream skips after a rebalance) or
a window left unacknowledged for a retry could be committed over, and a crash then lost it. Nor does
it know the records it never delivered: a jump in fetched offsets counts as acknowledged
(``_add_gap``). This ledger knows only what the pipeline consumed and settled.

The ledger also keeps each partition's windows in order. Faust can hand the pipeline a record
ahead of the next one it owes it: it resumes the partitions a moment before it seeks them to the
committed offsets, records fetched before the seek arrive after it, and then it drops the re-read
ones as already read ("DROPPED MESSAGE ROFF") while counting the jump as acknowledged. Processing
such a record would step a patient's alerts past windows that come later, and the replay of the
skipped ones would be ignored as old: a resolved alert resolved twice. So only the next offset of
the partition is accepted (the *frontier*); a record behind it is a duplicate and one ahead of it
opens a *hole*: both are dropped, and the consumer reads the partition again from the frontier.

Contract (plain code, no Faust; ``streams.transport`` drives it and asks it for every commit):

* ``expect(tps)`` when partitions are assigned: a new *generation* of each begins. Nothing is
  accepted until ``position``.
* ``position(tp, offset)`` when the consumer has been sought to ``offset`` (the committed offset, or
  the log start): the commit stands there, and ``offset`` is the next record to accept.
* ``revoke(tps)``: the partitions are gone; their claims no longer count and nothing of them may be
  committed until they are expected again.
* ``consume(tp, offset)`` returns a ``Claim`` for the next record of the partition, else None: the
  pipeline must then drop the record unprocessed (not positioned, read before, or ahead of a hole).
* ``settle(claim)`` once the window is written; a claim settles once, and a claim of an older
  generation is ignored, so a window finished after its partition moved never unblocks the new one.
* ``committable(tp)``: the offset to commit, or None when nothing new may be committed.
* ``hole(tp)``: where to read ``tp`` again from when records ahead of the frontier were dropped
  since the last time it said so (None otherwise).
* ``idle_gap(tp, delivered)``, asked on a timer with the last offset the consumer handed to its
  streams: where to read ``tp`` again from when a record at the frontier was handed over but never
  reached the pipeline (Faust's stream drops records around a rebalance) and nothing came after it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """One consumed record of ``tp`` at ``offset`` in the partition's ``generation`` (``serial``: which one)."""

    tp: tuple[str, int]
    offset: int
    generation: int
    serial: int


@dataclass
class _Partition:
    generation: int
    base: int | None = None
    """Where the commit stands (the consumer's starting offset, then each commit); None until positioned."""
    frontier: int | None = None
    """The next offset to accept; everything from ``base`` up to it was accepted once in this generation."""
    max_seen: int = -1
    """The highest offset handed over, accepted or not (a hole while it is at or past the frontier)."""
    dropped_ahead: bool = False
    """Records ahead of the frontier were dropped since ``hole`` last asked for a re-read."""
    warned_at: int | None = None
    idle_frontier: int | None = None
    """The frontier at the previous ``idle_gap`` call (a gap is reported only if it has not moved since)."""
    inflight: dict[int, int] = field(default_factory=dict)
    """Offset -> serial of its claim, for the accepted windows not yet settled."""


class OffsetLedger:
    """Offsets consumed and not yet settled, per partition; ``committable`` applies the rule above."""

    def __init__(self) -> None:
        self._parts: dict[tuple[str, int], _Partition] = {}
        self._generation = 0
        self._serial = 0
        self.holes_total = 0
        """Holes found (records handed over ahead of their turn); each is read again from its frontier."""

    def expect(self, tps: Iterable[tuple[str, int]]) -> None:
        """The partitions were assigned: a new generation of each; earlier claims no longer count."""
        for tp in tps:
            self._generation += 1
            self._parts[tp] = _Partition(self._generation)

    def position(self, tp: tuple[str, int], offset: int) -> None:
        """The consumer was sought to ``offset`` for ``tp``: the commit stands there (unexpected: a new generation)."""
        part = self._parts.get(tp)
        if part is None:
            self.expect([tp])
            part = self._parts[tp]
        part.base = offset
        if part.frontier is None or part.frontier < offset:
            part.frontier = offset
        if part.max_seen >= part.frontier:  # records arrived before the seek, unaccepted: read them again
            part.dropped_ahead = True

    def revoke(self, tps: Iterable[tuple[str, int]]) -> None:
        """The partitions left this consumer: forget them (their windows in flight are replayed by the owner)."""
        for tp in tps:
            self._parts.pop(tp, None)

    def assigned(self) -> set[tuple[str, int]]:
        """The partitions this ledger governs now."""
        return set(self._parts)

    def governs(self, tp: tuple[str, int]) -> bool:
        """True when ``tp`` is assigned here (its commits must come from ``committable``)."""
        return tp in self._parts

    def consume(self, tp: tuple[str, int], offset: int) -> Claim | None:
        """A claim when ``offset`` is the partition's next record; None: drop the record unprocessed."""
        part = self._parts.get(tp)
        if part is None:
            return None
        part.max_seen = max(part.max_seen, offset)
        if part.frontier is None:  # not positioned yet: ``position`` asks for a re-read if needed
            return None
        if offset != part.frontier:
            if offset > part.frontier:
                part.dropped_ahead = True
                if part.warned_at != part.frontier:
                    part.warned_at = part.frontier
                    self.holes_total += 1
                    log.warning(
                        "%s[%d]: offset %d arrived before %d; dropped, the partition is read again from %d.",
                        tp[0], tp[1], offset, part.frontier, part.frontier,
                    )  # fmt: skip
            return None
        part.frontier = offset + 1
        self._serial += 1
        part.inflight[offset] = self._serial
        return Claim(tp, offset, part.generation, self._serial)

    def settle(self, claim: Claim | None) -> bool:
        """The claimed window is written; False when the claim does not count (older generation, settled)."""
        if claim is None:
            return False
        part = self._parts.get(claim.tp)
        if part is None or part.generation != claim.generation or part.inflight.get(claim.offset) != claim.serial:
            return False
        del part.inflight[claim.offset]
        return True

    def unsettled(self, tp: tuple[str, int] | None = None) -> int:
        """Claims of ``tp`` (None: of every partition) not yet settled in the current generations."""
        parts = self._parts.values() if tp is None else [self._parts[tp]] if tp in self._parts else []
        return sum(len(part.inflight) for part in parts)

    def limit(self, tp: tuple[str, int]) -> int | None:
        """The highest offset the committed offset may reach now (None while ``tp`` is not positioned)."""
        part = self._parts.get(tp)
        if part is None or part.base is None or part.frontier is None:
            return None
        return min([part.frontier, *part.inflight])

    def committable(self, tp: tuple[str, int]) -> int | None:
        """The offset to commit for ``tp`` now, or None (not positioned, or nothing beyond the commit)."""
        part = self._parts.get(tp)
        offset = self.limit(tp)
        if part is None or part.base is None or offset is None or offset <= part.base:
            return None
        return offset

    def committed(self, tp: tuple[str, int], offset: int) -> None:
        """Kafka stored ``offset`` for ``tp``: the commit stands there now."""
        part = self._parts.get(tp)
        limit = self.limit(tp)
        if part is not None and part.base is not None and limit is not None and part.base < offset <= limit:
            part.base = offset

    def hole(self, tp: tuple[str, int]) -> int | None:
        """The offset to read ``tp`` again from, when records ahead of it were dropped since the last call."""
        part = self._parts.get(tp)
        if part is None or part.frontier is None or not part.dropped_ahead:
            return None
        part.dropped_ahead = False
        return part.frontier

    def idle_gap(self, tp: tuple[str, int], delivered: int) -> int | None:
        """The frontier to read ``tp`` again from when ``delivered`` (the last offset the consumer handed on)
        reached it twice in a row while nothing at all was in flight: that record was lost on the way.
        """
        part = self._parts.get(tp)
        if part is None or part.frontier is None or delivered < part.frontier or self.unsettled() > 0:
            if part is not None:
                part.idle_frontier = None
            return None
        if part.idle_frontier != part.frontier:
            part.idle_frontier = part.frontier  # first sighting: the record may still be on its way
            return None
        part.idle_frontier = None
        log.warning(
            "%s[%d]: offset %d was handed on but never reached the pipeline; the partition is read again from it.",
            tp[0], tp[1], part.frontier,
        )  # fmt: skip
        return part.frontier
