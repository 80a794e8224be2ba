import threading
import time

import pytest

from pipelines.convert.stream import Drain, Prefetch


def test_prefetch_keeps_order_and_stays_a_bounded_number_of_items_ahead():
    pulled = []

    def source():
        for i in range(100):
            pulled.append(i)
            yield i

    with Prefetch(source(), size=3) as items:
        first = [next(items) for _ in range(5)]
        time.sleep(0.2)  # let the producer run as far ahead as it can
        # 5 consumed, 3 queued, 1 held by the producer waiting for room.
        assert len(pulled) <= 5 + 3 + 1
        rest = list(items)
    assert first + rest == list(range(100))


def test_prefetch_reraises_the_producers_error_in_the_consumer():
    def source():
        yield 1
        raise OSError("decoder died")

    items = Prefetch(source(), size=2)
    assert next(items) == 1
    with pytest.raises(OSError, match="decoder died"):
        next(items)


def test_closing_a_prefetch_stops_its_producer():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    items = Prefetch(endless(), size=2)
    next(items)
    items.close()
    count = len(produced)
    time.sleep(0.2)
    assert len(produced) == count
    assert not any(t.name == "prefetch" for t in threading.enumerate())


def test_drain_consumes_in_order_and_reraises_in_the_producer():
    seen = []
    drain = Drain(seen.append, size=2)
    for i in range(50):
        drain.put(i)
    drain.finish()
    assert seen == list(range(50))

    def fail(item):
        raise ValueError(f"cannot encode {item}")

    drain = Drain(fail, size=1)
    with pytest.raises(ValueError, match="cannot encode 0"):
        for i in range(100):
            drain.put(i)
        drain.finish()
    drain.stop()
