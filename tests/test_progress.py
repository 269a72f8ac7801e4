"""The progress module: a line every ~30 s off a terminal, with step/total, loss, elapsed and ETA."""

from __future__ import annotations

import io

from mixsweep.run.progress import Progress, duration


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_line_every_interval_with_a_hand_computed_eta():
    clock, out = Clock(), io.StringIO()
    bar = Progress(10, "rte dropout seed 0", stream=out, tty=False, interval=30, clock=clock)
    for step in range(1, 11):
        clock.t = 10.0 * step  # 10 s a step
        bar.update(1, loss=1.0 / step)
    bar.close()
    # lines when 30 s have passed since the last: at steps 3, 6 and 9 (not after the last step);
    # ETA = elapsed / done x left: 30/3*7 = 70 s, 60/6*4 = 40 s, 90/9*1 = 10 s
    assert out.getvalue().splitlines() == [
        "[rte dropout seed 0] step 3/10 · loss 0.3333 · 30s elapsed · ETA 1m10s",
        "[rte dropout seed 0] step 6/10 · loss 0.1667 · 1m00s elapsed · ETA 40s",
        "[rte dropout seed 0] step 9/10 · loss 0.1111 · 1m30s elapsed · ETA 10s",
    ]


def test_disabled_prints_nothing():
    out = io.StringIO()
    bar = Progress(5, "x", enabled=False, stream=out, tty=False, interval=0)
    for _ in range(5):
        bar.update(1, loss=0.5)
    assert out.getvalue() == ""


def test_on_a_terminal_it_draws_a_bar_not_lines():
    out = io.StringIO()
    bar = Progress(4, "x", stream=out, tty=True, interval=0)
    for _ in range(4):
        bar.update(1, loss=0.5)
    bar.close()
    drawn = out.getvalue()
    assert "\rx:" in drawn and "/4 [" in drawn and "step" not in drawn  # tqdm redraws in place


def test_duration():
    assert [duration(s) for s in (0, 59, 61, 3599, 3600, 7980)] == ["0s", "59s", "1m01s", "59m59s", "1h00m", "2h13m"]
