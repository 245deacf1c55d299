"""A dependency-free progress bar (the runtime installs no tqdm)."""
from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress(total, "sampling") as bar: bar.update(k, loss=0.1)``.

    Draws to stderr, at most ~10 times a second on a terminal and every 5 s into a log;
    silent when ``enabled`` is False.
    """

    def __init__(self, total: int, desc: str = "", enabled: bool = True, stream=None,
                 width: int = 28):
        self.total, self.desc, self.enabled = max(int(total), 1), desc, enabled
        self.stream = stream or sys.stderr
        self.width, self.n, self.postfix = width, 0, ""
        self.start = self._last = time.perf_counter()
        # a terminal gets a live bar; a log file (CI, nohup) a line every few seconds
        is_tty = getattr(self.stream, "isatty", lambda: False)()
        self.interval = 0.1 if is_tty else 5.0
        self.begin, self.end = ("\r", "") if is_tty else ("", "\n")

    def update(self, n: int = 1, **postfix) -> None:
        self.n = min(self.n + n, self.total)
        if postfix:
            self.postfix = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                    for k, v in postfix.items())
        now = time.perf_counter()
        if self.enabled and (now - self._last > self.interval or self.n == self.total):
            self._last = now
            self._draw(now)

    def set(self, n: int) -> None:
        self.update(n - self.n)

    def _draw(self, now: float) -> None:
        frac = self.n / self.total
        filled = int(frac * self.width)
        elapsed = now - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"{self.begin}{self.desc} [{bar}] {self.n}/{self.total} "
                          f"{elapsed:.0f}s<{eta:.0f}s {self.postfix}  {self.end}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            if self.n < self.total:  # stopped early: show where
                self._draw(time.perf_counter())
            if not self.end:
                self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
