"""The Responses store stays within its bounds: entries, bytes, age; least recently used first."""

from __future__ import annotations

from fw.server.response_store import ResponseStore, StoredResponse


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def entry(text="x"):
    return StoredResponse({"id": "r", "output": text}, [{"role": "user", "content": text}])


def store(**bounds):
    clock = Clock()
    values = {"max_entries": 3, "max_bytes": 10_000, "ttl": 60.0, **bounds}
    return ResponseStore(clock=clock, **values), clock


def test_entries_are_capped_and_the_least_recently_used_goes_first():
    responses, _ = store(max_entries=3)
    for name in "abc":
        responses.put(name, entry())
    assert responses.get("a") is not None  # a is now the most recently used
    responses.put("d", entry())
    assert len(responses) == 3 and responses.get("b") is None
    assert all(responses.get(name) is not None for name in "acd")


def test_bytes_are_capped():
    one = entry("y" * 100).measure()
    responses, _ = store(max_entries=100, max_bytes=3 * one)
    for name in "abcd":
        responses.put(name, entry("y" * 100))
    assert len(responses) == 3 and responses.bytes == 3 * one <= responses.max_bytes
    assert responses.get("a") is None


def test_an_entry_larger_than_the_bound_is_not_kept():
    responses, _ = store(max_bytes=50)
    assert responses.put("big", entry("z" * 100)) is False
    assert responses.get("big") is None and responses.bytes == 0


def test_entries_expire():
    responses, clock = store(ttl=10.0)
    responses.put("a", entry())
    clock.now = 9.9
    assert responses.get("a") is not None
    clock.now = 10.0
    assert responses.get("a") is None and len(responses) == 0 and responses.bytes == 0


def test_expired_entries_are_dropped_when_others_are_stored():
    responses, clock = store(ttl=10.0, max_entries=100)
    responses.put("a", entry())
    clock.now = 20.0
    responses.put("b", entry())
    assert len(responses) == 1


def test_replacing_and_deleting_keep_the_byte_count():
    responses, _ = store()
    responses.put("a", entry("short"))
    responses.put("a", entry("a longer text"))
    assert len(responses) == 1 and responses.bytes == entry("a longer text").measure()
    assert responses.delete("a") and responses.bytes == 0 and not responses.delete("a")


def test_a_zero_bound_turns_the_store_off():
    responses, _ = store(max_entries=0)
    assert not responses.enabled and responses.put("a", entry()) is False
