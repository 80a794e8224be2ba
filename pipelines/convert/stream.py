"""Overlapping the stages of a conversion: decode, depth, warp + inpaint and encode each run in
their own thread, joined by bounded queues.

The heavy work of every stage runs in code that releases the GIL (ffmpeg pipes, OpenCV, torch,
NumPy copies), so threads overlap on separate cores without copying frames between processes.
Queues hold a fixed number of items, so memory stays bounded whatever the video's length, and a
single consumer per queue keeps the frames in order. An exception in any stage reaches the
caller; stopping early (an error downstream, Ctrl-C) stops the producer threads.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_END = object()
_POLL = 0.1  # seconds between checks of the stop flag while a queue is full or empty


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetch(Generic[T]):
    """Iterate ``source`` in a background thread, at most ``size`` items ahead of the consumer.

    Use as an iterator; ``close()`` (also called at exhaustion, on error and by ``with``) stops
    the thread. Exceptions raised by ``source`` are re-raised by ``__next__``.
    """

    def __init__(self, source: Iterable[T], size: int, name: str = "prefetch") -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._source = source
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    break
            else:
                self._put(_END)
        except BaseException as error:  # handed to the consumer
            self._put(_Failure(error))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        while True:
            try:
                item = self._queue.get(timeout=_POLL)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise StopIteration from None
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        return item

    def close(self) -> None:
        """Stop the producer thread (items not yet consumed are dropped)."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Drain(Generic[T]):
    """Hand items to ``consume`` in a background thread, at most ``size`` waiting.

    ``put`` blocks while the queue is full and re-raises, in the caller's thread, an exception
    ``consume`` raised; ``finish()`` waits for every item to be consumed.
    """

    def __init__(self, consume: Callable[[T], None], size: int, name: str = "drain") -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._consume = consume
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is None:
                try:
                    self._consume(item)
                except BaseException as error:  # re-raised in the producer's thread
                    self._error = error

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        while True:
            self._check()
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait until every item has been consumed; re-raise the consumer's exception."""
        self.stop()
        self._check()

    def stop(self) -> None:
        """End the thread after the items already queued (consumed unless one failed)."""
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()
