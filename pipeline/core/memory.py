"""Peak memory of this process: sampled during a block, or the kernel's high-water mark."""

from __future__ import annotations

import resource
import sys
import threading


def process_peak_mb(children: bool = False) -> float:
    """The kernel's peak resident set of this process (or of its finished children), MB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    peak = resource.getrusage(who).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS


def current_rss_mb() -> float:
    """This process's resident set now, MB (after the imports: the interpreter's footprint)."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class PeakRSS:
    """Sample the process's resident memory in a thread: ``with PeakRSS() as m: ...``,
    then ``m.peak_mb`` (the peak seen during the block) and ``m.start_mb``."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak_mb = 0.0
        self.start_mb = 0.0
        self._stop = threading.Event()

    def _rss(self) -> float:
        return current_rss_mb()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self._rss())

    def __enter__(self) -> PeakRSS:
        self.start_mb = self.peak_mb = self._rss()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss())
