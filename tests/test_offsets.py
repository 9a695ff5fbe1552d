"""The commit rule (``streams.offsets.OffsetLedger``): its contract, then random interleavings.

The property test drives a model of one worker consuming two partitions from a broker that keeps
only the committed offsets: consume, complete (write succeeded), write failure, write retry,
revoke, reassign (records may arrive before Faust's seek), crash, commit, faults of the consumer
underneath (a record never handed over, a re-read without a rebalance) and the re-reads the
transport asks for (a hole, an idle gap). After every step the committed offset of each partition
is at or below its lowest window accepted and not settled, every offset below it was written, and
each partition's windows were processed in offset order without a gap; at the end every window has
been written, each claim settled once, and the commit reaches the end.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from streams.offsets import Claim, OffsetLedger

TP0 = ("ecg.windows", 0)
TP1 = ("ecg.windows", 1)


def _positioned(ledger: OffsetLedger, tp: tuple[str, int], offset: int) -> None:
    """An assignment as Faust makes it: expected, then sought to the committed offset."""
    ledger.expect([tp])
    ledger.position(tp, offset)


def test_commit_follows_settled_windows_and_holds_at_the_first_unsettled() -> None:
    ledger = OffsetLedger()
    _positioned(ledger, TP0, 100)
    assert ledger.committable(TP0) is None  # nothing beyond where it started
    claims = [ledger.consume(TP0, o) for o in range(100, 105)]
    assert ledger.committable(TP0) is None  # 100 is in flight
    assert ledger.settle(claims[0]) and ledger.settle(claims[1])
    assert ledger.committable(TP0) == 102
    assert ledger.settle(claims[3]) and ledger.settle(claims[4])  # out of order: 102 still in flight
    assert ledger.committable(TP0) == 102
    assert ledger.settle(claims[2])
    assert ledger.committable(TP0) == 105
    assert not ledger.settle(claims[2])  # a claim settles once


def test_a_window_whose_write_failed_holds_the_commit_until_it_is_written() -> None:
    ledger = OffsetLedger()
    _positioned(ledger, TP0, 0)
    failed, *rest = [ledger.consume(TP0, o) for o in range(5)]
    for claim in rest:
        ledger.settle(claim)
    assert ledger.committable(TP0) is None  # Faust would have committed 5 here (issue #606)
    ledger.settle(failed)
    assert ledger.committable(TP0) == 5


def test_revoked_windows_are_replayed_from_the_committed_offset_not_skipped() -> None:
    ledger = OffsetLedger()
    _positioned(ledger, TP0, 10)
    old = [ledger.consume(TP0, o) for o in range(10, 20)]
    ledger.settle(old[0])
    committed = ledger.committable(TP0)
    assert committed == 11
    ledger.revoke([TP0])
    assert ledger.committable(TP0) is None and ledger.consume(TP0, 20) is None
    assert not ledger.settle(old[1])  # a window finished after its partition left counts for nothing
    _positioned(ledger, TP0, committed)  # the consumer reads again from the committed offset
    assert ledger.consume(TP0, 11) is not None
    assert not ledger.settle(old[2])  # an old claim never unblocks the new generation
    assert ledger.committable(TP0) is None  # 11 is in flight again


def test_a_record_ahead_of_its_turn_is_dropped_and_the_partition_read_again() -> None:
    ledger = OffsetLedger()
    _positioned(ledger, TP0, 0)
    for o in (0, 1):
        ledger.settle(ledger.consume(TP0, o))
    assert ledger.consume(TP0, 4) is None and ledger.consume(TP0, 5) is None  # 2, 3 skipped underneath
    assert ledger.committable(TP0) == 2 and ledger.holes_total == 1
    assert ledger.hole(TP0) == 2 and ledger.hole(TP0) is None  # asked once...
    assert ledger.consume(TP0, 6) is None
    assert ledger.hole(TP0) == 2  # ...until another record arrives ahead (a stale fetch after the seek)
    for o in range(2, 7):  # read again from the hole, in order
        ledger.settle(ledger.consume(TP0, o))
    assert ledger.committable(TP0) == 7 and ledger.hole(TP0) is None


def test_nothing_is_accepted_before_the_seek_and_what_came_early_is_read_again() -> None:
    """Faust resumes the partitions a moment before it seeks them; records that slip through are re-read."""
    ledger = OffsetLedger()
    ledger.expect([TP0])
    assert all(ledger.consume(TP0, o) is None for o in range(0, 32))
    assert ledger.committable(TP0) is None
    ledger.position(TP0, 0)  # committed 0: aiokafka does not move the position
    assert ledger.hole(TP0) == 0  # so the transport seeks back to 0
    claims = [ledger.consume(TP0, o) for o in range(0, 33)]
    assert all(claims)
    for claim in claims:
        ledger.settle(claim)
    assert ledger.committable(TP0) == 33


def test_a_duplicate_below_the_next_offset_is_dropped() -> None:
    ledger = OffsetLedger()
    _positioned(ledger, TP0, 0)
    first = ledger.consume(TP0, 0)
    assert ledger.consume(TP0, 0) is None  # read again (a re-seek): the first claim stands
    assert ledger.committable(TP0) is None and ledger.hole(TP0) is None
    ledger.settle(first)
    assert ledger.committable(TP0) == 1


def test_a_record_lost_on_the_way_at_the_frontier_is_read_again_once_all_is_idle() -> None:
    ledger = OffsetLedger()
    _positioned(ledger, TP0, 5)
    _positioned(ledger, TP1, 0)
    busy = ledger.consume(TP1, 0)
    assert ledger.idle_gap(TP0, 5) is None and ledger.idle_gap(TP0, 5) is None  # TP1 has a window in flight
    ledger.settle(busy)
    assert ledger.idle_gap(TP0, 4) is None  # nothing handed on at the frontier yet
    assert ledger.idle_gap(TP0, 5) is None  # first sighting: it may still be on its way
    assert ledger.idle_gap(TP0, 5) == 5  # still not arrived: read again from 5
    assert ledger.consume(TP0, 5) is not None and ledger.idle_gap(TP0, 5) is None


def test_committed_moves_the_base_and_partitions_are_independent() -> None:
    ledger = OffsetLedger()
    _positioned(ledger, TP0, 0)
    _positioned(ledger, TP1, 7)
    ledger.settle(ledger.consume(TP0, 0))
    pending = ledger.consume(TP1, 7)
    assert ledger.committable(TP0) == 1 and ledger.committable(TP1) is None
    ledger.committed(TP0, 1)
    assert ledger.committable(TP0) is None
    assert ledger.consume(TP0, 0) is None  # read again below the commit: dropped
    ledger.settle(pending)
    assert ledger.committable(TP1) == 8
    assert ledger.assigned() == {TP0, TP1} and ledger.unsettled(TP1) == 0


def test_unassigned_partitions_have_nothing_to_commit() -> None:
    ledger = OffsetLedger()
    assert ledger.consume(TP0, 0) is None
    assert not ledger.settle(None)
    assert ledger.committable(TP0) is None and ledger.limit(TP0) is None and not ledger.governs(TP0)


# --- random interleavings ------------------------------------------------------------------------

RECORDS = 12
TPS = (TP0, TP1)


@dataclass
class _Window:
    tp: tuple[str, int]
    offset: int
    claim: Claim
    failed: bool = False


class WorkerModel(RuleBasedStateMachine):
    """One worker over two partitions of ``RECORDS`` records; the broker keeps only committed offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.committed = {tp: 0 for tp in TPS}  # broker side: survives crashes
        self.written: dict[tuple[str, int], Counter[int]] = {tp: Counter() for tp in TPS}
        self._start()

    def _start(self) -> None:
        """A fresh worker process: nothing assigned, nothing in flight."""
        self.ledger = OffsetLedger()
        self.position: dict[tuple[str, int], int] = {}
        self.sought: set[tuple[str, int]] = set()
        self.inflight: list[_Window] = []
        self.stale: list[Claim] = []
        self.processed: dict[tuple[str, int], list[int]] = {}  # offsets processed in the current generation

    def _settle(self, window: _Window) -> None:
        assert self.ledger.settle(window.claim)
        assert not self.ledger.settle(window.claim), "a claim settles once"
        self.written[window.tp][window.offset] += 1
        self.inflight.remove(window)

    @initialize()
    def start_assigned(self) -> None:
        """Most runs begin with both partitions assigned and sought, as a worker that just joined."""
        for tp in TPS:
            self.reassign(tp)
            self.seek_to_committed(tp, moves=True)

    @rule(tp=st.sampled_from(TPS))
    def reassign(self, tp: tuple[str, int]) -> None:
        """Assigned: the consumer fetches from the committed offset, and may deliver before Faust seeks."""
        if tp not in self.position:
            self.ledger.expect([tp])
            self.position[tp] = self.committed[tp]
            self.processed[tp] = []

    @rule(tp=st.sampled_from(TPS), moves=st.booleans())
    def seek_to_committed(self, tp: tuple[str, int], moves: bool) -> None:
        """Faust's seek after the assignment (aiokafka moves the position only for a non-zero commit)."""
        if tp in self.position and tp not in self.sought:
            self.ledger.position(tp, self.committed[tp])
            self.sought.add(tp)
            if moves:
                self.position[tp] = self.committed[tp]

    @rule(tp=st.sampled_from(TPS))
    def read_again_from_the_hole(self, tp: tuple[str, int]) -> None:
        """What the transport does at its next commit when the ledger reports a hole."""
        hole = self.ledger.hole(tp)
        if hole is not None and tp in self.position:
            self.position[tp] = hole

    @rule(tp=st.sampled_from(TPS))
    def idle_tick(self, tp: tuple[str, int]) -> None:
        """The transport's timer: a record handed on at the frontier that never arrived is read again."""
        if tp in self.position:
            gap = self.ledger.idle_gap(tp, self.position[tp] - 1)
            if gap is not None:
                self.position[tp] = gap

    @rule(tp=st.sampled_from(TPS), n=st.integers(1, 4))
    def consume(self, tp: tuple[str, int], n: int) -> None:
        for _ in range(n):
            if tp in self.position and self.position[tp] < RECORDS:
                offset = self.position[tp]
                self.position[tp] += 1
                claim = self.ledger.consume(tp, offset)
                if claim is None:
                    continue  # dropped unprocessed
                done = self.processed[tp]
                expected = done[-1] + 1 if done else self.committed[tp]
                assert offset == expected, f"{tp}: {offset} processed after {done[-3:]}: out of order or a gap"
                done.append(offset)
                self.inflight.append(_Window(tp, offset, claim))

    @precondition(lambda self: any(not w.failed for w in self.inflight))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        window = data.draw(st.sampled_from([w for w in self.inflight if not w.failed]))
        self._settle(window)

    @precondition(lambda self: any(not w.failed for w in self.inflight))
    @rule(data=st.data())
    def write_failure(self, data: st.DataObject) -> None:
        data.draw(st.sampled_from([w for w in self.inflight if not w.failed])).failed = True

    @precondition(lambda self: any(w.failed for w in self.inflight))
    @rule(data=st.data())
    def write_retry(self, data: st.DataObject) -> None:
        self._settle(data.draw(st.sampled_from([w for w in self.inflight if w.failed])))

    @rule(tp=st.sampled_from(TPS))
    def revoke(self, tp: tuple[str, int]) -> None:
        self.ledger.revoke([tp])
        self.position.pop(tp, None)
        self.sought.discard(tp)
        self.stale += [w.claim for w in self.inflight if w.tp == tp]
        self.inflight = [w for w in self.inflight if w.tp != tp]

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data())
    def stale_window_finishes(self, data: st.DataObject) -> None:
        claim = data.draw(st.sampled_from(self.stale))
        assert not self.ledger.settle(claim), "a window of an older generation must not settle"
        self.stale.remove(claim)

    @rule()
    def crash(self) -> None:
        self._start()

    @rule(tp=st.sampled_from(TPS))
    def record_never_handed_over(self, tp: tuple[str, int]) -> None:
        if tp in self.position and self.position[tp] < RECORDS:
            self.position[tp] += 1

    @rule(tp=st.sampled_from(TPS), back=st.integers(1, 5))
    def read_again_without_rebalance(self, tp: tuple[str, int], back: int) -> None:
        if tp in self.position:
            self.position[tp] = max(self.committed[tp], self.position[tp] - back)

    @rule(tp=st.sampled_from(TPS))
    def commit(self, tp: tuple[str, int]) -> None:
        offset = self.ledger.committable(tp)
        if offset is not None and offset > self.committed[tp]:
            self.committed[tp] = offset
            self.ledger.committed(tp, offset)

    @invariant()
    def committed_offset_never_passes_an_unsettled_window(self) -> None:
        for tp in TPS:
            unsettled = [w.offset for w in self.inflight if w.tp == tp]
            if unsettled:
                assert self.committed[tp] <= min(unsettled)
            limit = self.ledger.limit(tp)
            if limit is not None and unsettled:
                assert limit <= min(unsettled)

    @invariant()
    def every_offset_below_the_commit_was_written(self) -> None:
        for tp in TPS:
            missing = [o for o in range(self.committed[tp]) if not self.written[tp][o]]
            assert not missing, f"{tp}: committed {self.committed[tp]} past unwritten {missing}"

    def teardown(self) -> None:
        """Drain: the consumer reads on, re-reading from each hole the ledger reports, until all is written."""
        for _ in range(4 * RECORDS):
            for tp in TPS:
                if tp not in self.position:
                    self.reassign(tp)
                self.seek_to_committed(tp, moves=True)
                self.read_again_from_the_hole(tp)
                self.idle_tick(tp)
                self.consume(tp, RECORDS)
            for window in list(self.inflight):
                self._settle(window)
            for tp in TPS:
                self.commit(tp)
        for tp in TPS:
            assert self.committed[tp] == RECORDS, f"{tp}: stuck at {self.committed[tp]}"
            assert all(self.written[tp][o] >= 1 for o in range(RECORDS))


WorkerModel.TestCase.settings = settings(
    max_examples=300, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestCommitRuleUnderRandomInterleavings = WorkerModel.TestCase
