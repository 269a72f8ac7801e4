"""Progress of one training run: a tqdm bar on a terminal, a plain line every ~30 s elsewhere.

Off a terminal (nohup, tmux logging, SLURM, a joblib worker) a redrawn bar is either invisible or
thousands of carriage returns in a log file, so the run prints a line instead:

    [mrpc mixout(w_pre,0.7) seed 3] step 120/345 · loss 0.512 · 1m02s elapsed · ETA 1m56s

ETA = elapsed / steps done × steps left (the mean step time so far, evaluation included).
``MIXSWEEP_PROGRESS_INTERVAL`` sets the seconds between lines (default 30);
``MIXSWEEP_PROGRESS_BARS=0`` asks for lines on a terminal too (set for parallel launchers).
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

DEFAULT_INTERVAL = 30.0


def duration(seconds: float) -> str:
    """``2h13m``, ``4m05s`` or ``12s``."""
    seconds = int(max(0.0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _interval() -> float:
    try:
        return float(os.environ.get("MIXSWEEP_PROGRESS_INTERVAL", DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL


class Progress:
    """``update(loss=...)`` once per optimizer step, ``close()`` at the end.

    ``enabled=False`` makes every call a no-op. The bar is drawn on stderr when it is a terminal
    (``tty=None`` asks ``sys.stderr.isatty()``); otherwise lines go to ``stream`` (default stdout,
    beside the sweep's one line per finished run).
    """

    def __init__(self, total: int, desc: str, *, enabled: bool = True, stream: TextIO | None = None,
                 tty: bool | None = None, interval: float | None = None,
                 clock=time.monotonic) -> None:
        self.total, self.desc, self.enabled = int(total), desc, enabled
        if tty is None:  # parallel workers share one terminal: bars would overwrite each other
            tty = sys.stderr.isatty() and os.environ.get("MIXSWEEP_PROGRESS_BARS") != "0"
        self.stream = stream or (sys.stderr if tty else sys.stdout)
        self.interval = _interval() if interval is None else interval
        self.clock = clock
        self.step = 0
        self.loss: float | None = None
        self.start = self.last = clock()
        self.bar = None
        if enabled and tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=desc, leave=False, file=self.stream)

    def update(self, n: int = 1, loss: float | None = None) -> None:
        if not self.enabled:
            return
        self.step += n
        if loss is not None:
            self.loss = float(loss)
        if self.bar is not None:
            self.bar.update(n)
            if loss is not None:
                self.bar.set_postfix(loss=f"{self.loss:.4f}", refresh=False)
            return
        now = self.clock()
        if now - self.last >= self.interval and self.step < self.total:
            self.last = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float | None = None) -> str:
        elapsed = (self.clock() if now is None else now) - self.start
        parts = [f"[{self.desc}] step {self.step}/{self.total}"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        parts.append(f"{duration(elapsed)} elapsed")
        if self.step:
            parts.append(f"ETA {duration(elapsed / self.step * (self.total - self.step))}")
        return " · ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
