"""The recall gate: which dispatches wait for the stale-copy recall, and in what order
they go (connectors/delivery/recall.py, RecallGate)."""

from __future__ import annotations

from connectors.delivery.ports import TP, Job
from connectors.delivery.recall import InQuestion, RecallGate
from hookstream.records import DeliveryRequest
from tests.unit.delivery_fakes import request

DELIVERIES = TP("hookstream.deliveries", 0)
RETRY = TP("hookstream.retry.10s", 0)


class Loop:
    """What the gate calls: the worker's submit, the stale filter's seed, ownership, pauses."""

    def __init__(self, max_waiting: int = 100) -> None:
        self.sent: list[str] = []
        self.seeded: list[tuple[str, float]] = []
        self.generations: dict[TP, int] = {}
        self.paused: list[TP] = []
        self.lifted: list[TP] = []
        self.gate = RecallGate(self.submit, self.seeded.extend,
                               lambda tp, generation: self.generations.get(tp, 0) == generation,
                               self.paused.append, self.lifted.append, max_waiting)

    def submit(self, job: Job) -> None:
        self.sent.append(job.request.delivery_id)

    def offer(self, tp: TP, *reqs: DeliveryRequest) -> None:
        for offset, req in enumerate(reqs):
            self.gate.submit(Job(tp, offset, req, self.generations.get(tp, 0)))


def item(n: int, event: str = "a") -> DeliveryRequest:
    """A delivery for item n; another `event` of the same item shares its key."""
    return request("hook", "http://target/in", n).evolve(delivery_id=f"{event}{n}",
                                                          event_id=f"{event}{n}")


def in_question(*reqs: DeliveryRequest) -> InQuestion:
    return InQuestion(frozenset(r.delivery_id for r in reqs), frozenset(r.key() for r in reqs))


def test_without_a_recall_running_everything_goes_at_once() -> None:
    loop = Loop()
    loop.offer(DELIVERIES, item(1), item(2))
    assert loop.sent == ["a1", "a2"]


def test_everything_waits_until_the_candidates_are_known_then_only_those_in_question() -> None:
    loop = Loop()
    loop.gate.assigned(1)
    loop.offer(DELIVERIES, item(1), item(2), item(3))
    assert loop.sent == [] and loop.gate.waiting == 3
    loop.gate.known(1, in_question(item(1)))
    assert loop.sent == ["a2", "a3"]  # not in question: they go, in order
    loop.offer(DELIVERIES, item(4), item(1, "b"))  # b1: another event of item 1
    assert loop.sent == ["a2", "a3", "a4"]  # b1 waits behind a1 (same key)
    loop.gate.recalled(1, [("a1", float("inf"))])
    assert loop.seeded == [("a1", float("inf"))]  # the filter learns before a1 goes
    assert loop.sent == ["a2", "a3", "a4", "a1", "b1"]
    loop.offer(DELIVERIES, item(1, "c"))
    assert loop.sent[-1] == "c1"  # the gate is open


def test_a_record_behind_a_waiting_one_of_its_key_waits_too() -> None:
    loop = Loop()
    loop.gate.assigned(1)
    loop.offer(DELIVERIES, item(1), item(1, "b"), item(2))
    loop.gate.known(1, in_question(item(1)))
    assert loop.sent == ["a2"]
    loop.gate.recalled(1, [])
    assert loop.sent == ["a2", "a1", "b1"]


def test_records_of_a_revoked_partition_are_dropped_not_sent() -> None:
    loop = Loop()
    loop.gate.assigned(1)
    loop.offer(DELIVERIES, item(1))
    loop.offer(RETRY, item(2))
    loop.generations[DELIVERIES] = 1  # revoked: its new owner reads it again
    loop.gate.recalled(1, [])
    assert loop.sent == ["a2"]


def test_a_recall_of_an_earlier_assignment_only_seeds() -> None:
    loop = Loop()
    loop.gate.assigned(1)
    loop.offer(DELIVERIES, item(1))
    loop.gate.assigned(2)  # a new assignment (its partitions kept): its own recall runs
    loop.gate.known(1, in_question())
    loop.gate.recalled(1, [("x", 0.0)])
    assert loop.sent == [] and loop.seeded == [("x", 0.0)]
    loop.gate.recalled(2, [])
    assert loop.sent == ["a1"]


def test_past_the_bound_the_partitions_pause_until_the_recall_ends() -> None:
    loop = Loop(max_waiting=2)
    loop.gate.assigned(1)
    loop.offer(DELIVERIES, item(1), item(2), item(3))
    loop.offer(RETRY, item(4))
    assert loop.paused == [DELIVERIES, RETRY] and loop.gate.waiting == 4
    loop.gate.recalled(1, [])
    assert sorted(loop.lifted) == sorted([DELIVERIES, RETRY])
    assert loop.sent == ["a1", "a2", "a3", "a4"]
