"""How often one unit's link may upload: a sliding window per link, in the portal's process.

A clerk fixing a rejected return uploads a few times in a quarter of an hour; a script or a stuck browser resending
the same form hundreds of times would fill the archive and the database with copies and keep the checker busy. Each
link gets `limit` uploads per `window` seconds; the next is refused with 429 and the seconds to wait, before its body
is read. The window lives in this process (the portal runs as one): a restart forgets it, which errs on the clerk's
side.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class UploadLimiter:
    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()  # handlers run in several threads of the server's pool

    def take(self, key: str) -> float | None:
        """Count an upload by this key; None if allowed, else the seconds until the next one would be."""
        now = self._clock()
        with self._lock:
            times = self._seen.setdefault(key, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.limit:
                return times[0] + self.window - now
            times.append(now)
            if len(self._seen) > 10_000:  # many links over a long run: forget the quiet ones
                self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - self.window}
            return None
