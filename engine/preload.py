"""Folders opened on background threads, one load per folder version, shared by every session.

The app starts its slow opens at its first page view, as it starts Spark
(:class:`engine.spark.SparkStarter`): the current model's serving index
(:meth:`engine.recommender.serving.RecommenderIndex.load`) and the release's prepared Parquet
(:class:`engine.data.stats_columnar.ColumnarRelease`). At 25 M ratings each takes seconds, so the
first page that needs one would otherwise wait for all of it. A page asks for what it needs and
waits only for what is left of that load; concurrent sessions wait for the same load, never
start a second. A load that failed is forgotten, so the next request tries again (the folder
may have been fixed, or another model made current).

Example:
    >>> loads = BackgroundLoads(RecommenderIndex.load)
    >>> loads.start("models/als/2026-12-02T10-00-00", stamp=1.0)   # doctest: +SKIP
    >>> index = loads.get("models/als/2026-12-02T10-00-00", stamp=1.0)  # waits for that load   # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class BackgroundLoads(Generic[T]):
    """Results of ``load(folder)``, keyed by (folder, stamp); the newest ``keep`` are kept.

    ``stamp`` tells versions of a folder apart (the app uses the modification time of the file
    that is written last: a model's params.json, a prepared release's manifest.json). ``name``
    names the threads (seen in a thread dump).
    """

    def __init__(self, load: Callable[[str], T], keep: int = 3, name: str = "background-load"):
        self._keep = keep
        self._load = load
        self._name = name
        self._lock = threading.Lock()
        self._loads: OrderedDict[tuple[str, float], Future] = OrderedDict()

    def start(self, folder: str, stamp: float) -> Future:
        """The load of ``folder`` at ``stamp``: started on a thread of its own unless one is running
        or done (a failed one is started again)."""
        key = (str(folder), float(stamp))
        with self._lock:
            future = self._loads.get(key)
            if future is not None and not (future.done() and future.exception() is not None):
                self._loads.move_to_end(key)
                return future
            future = Future()
            future.set_running_or_notify_cancel()
            self._loads[key] = future
            self._loads.move_to_end(key)
            while len(self._loads) > self._keep:  # an older model's index: its memory goes back
                self._loads.popitem(last=False)
        threading.Thread(target=self._run, args=(future, key[0]), name=self._name, daemon=True).start()
        return future

    def _run(self, future: Future, folder: str) -> None:
        try:
            future.set_result(self._load(folder))
        except BaseException as exc:  # noqa: BLE001  (handed to whoever waits: they show it)
            future.set_exception(exc)

    def ready(self, folder: str, stamp: float) -> bool:
        """Whether :meth:`get` would return at once (a load that failed is tried again: not ready)."""
        with self._lock:
            future = self._loads.get((str(folder), float(stamp)))
        return future is not None and future.done() and future.exception() is None

    def get(self, folder: str, stamp: float) -> T:
        """What the load returned (waiting for it, started now when none is running); raises what
        the load raised (e.g. :class:`~engine.recommender.model_store.ModelError` for a broken model)."""
        return self.start(folder, stamp).result()


__all__ = ["BackgroundLoads"]
