"""The gateway's on-disk queue: results wait there in order, each with one Idempotency-Key, across restarts; taken
files are recorded with their result; past its size limit the oldest results go first."""

import sqlite3

import pytest

from edge.outbox import Outbox, Outgoing, TakenFile


def outgoing(n: int, size: int = 10) -> Outgoing:
    return Outgoing("edge-results", {"count": str(n)}, "density", "density.npz", bytes([n % 256]) * size, f"t{n}")


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state" / "outbox.sqlite3"


def test_results_come_out_oldest_first_with_the_key_they_were_queued_with(path):
    outbox = Outbox(path)
    keys = [outbox.put(outgoing(n)) for n in range(3)]
    assert len(set(keys)) == 3
    item = outbox.next_due()
    assert (item.idempotency_key, item.outgoing) == (keys[0], outgoing(0))
    outbox.failed_attempt(item, "server unreachable")
    again = outbox.next_due()
    assert (again.idempotency_key, again.attempts) == (keys[0], 1)  # a retry reuses the key: no duplicate
    outbox.delivered(again)
    assert outbox.next_due().idempotency_key == keys[1]
    assert outbox.stats() | {"oldest_queued_captured_at": None} == {
        "queue_length": 2,
        "queue_bytes": 20,
        "oldest_queued_captured_at": None,
        "rejected": 0,
        "delivered": 1,
        "dropped": 0,
    }


def test_the_queue_survives_a_restart(path):
    first = Outbox(path)
    key = first.put(outgoing(7))
    first.close()
    reopened = Outbox(path)
    item = reopened.next_due()
    assert (item.idempotency_key, item.outgoing.payload) == (key, outgoing(7).payload)


def test_a_rejected_result_is_kept_aside_with_the_servers_answer(path):
    outbox = Outbox(path)
    outbox.put(outgoing(1))
    second = outbox.put(outgoing(2))
    outbox.rejected(outbox.next_due(), "HTTP 400: density: values must be finite")
    assert outbox.next_due().idempotency_key == second
    assert outbox.stats()["rejected"] == 1
    assert outbox.rejected_items()[0][2] == "HTTP 400: density: values must be finite"


def test_a_taken_file_is_recorded_with_its_result_and_a_rewritten_file_is_new(path):
    outbox = Outbox(path)
    outbox.put(outgoing(1), TakenFile("/frames/a.jpg", 100, 2000))
    outbox.record_taken(TakenFile("/frames/broken.jpg", 100, 5))
    assert outbox.was_taken("/frames/a.jpg", 100, 2000)
    assert outbox.was_taken("/frames/broken.jpg", 100, 5)
    assert not outbox.was_taken("/frames/a.jpg", 200, 2100)  # written again under the same name
    assert not outbox.was_taken("/frames/b.jpg", 100, 2000)


def test_a_file_is_not_recorded_as_taken_when_its_result_could_not_be_queued(path):
    outbox = Outbox(path)
    outbox.put(outgoing(1))
    outbox.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(sqlite3.IntegrityError, match="disk full"):
        outbox.put(outgoing(2), TakenFile("/frames/b.jpg", 1, 1))
    assert not outbox.was_taken("/frames/b.jpg", 1, 1)  # so the next look takes it again
    assert outbox.stats()["queue_length"] == 1


def test_past_its_size_limit_the_oldest_results_are_dropped_and_counted(path):
    outbox = Outbox(path, max_bytes=35)
    keys = [outbox.put(outgoing(n)) for n in range(5)]
    stats = outbox.stats()
    assert (stats["queue_length"], stats["queue_bytes"], stats["dropped"]) == (3, 30, 2)
    assert outbox.next_due().idempotency_key == keys[2]


def test_the_newest_result_stays_even_when_it_alone_is_over_the_limit(path):
    outbox = Outbox(path, max_bytes=5)
    key = outbox.put(outgoing(1, size=50))
    assert outbox.next_due().idempotency_key == key
