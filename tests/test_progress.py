"""The dependency-free progress bar: a live bar on a terminal, sparse lines in a log."""
import io

from latentforge.runtime.progress import Progress


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_log_stream_gets_whole_lines_not_carriage_returns():
    out = io.StringIO()
    with Progress(1000, "work", stream=out) as bar:
        for _ in range(1000):
            bar.update(1, loss=0.25)
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n")
    assert text.count("\n") <= 3  # throttled to one line every 5 s, plus the final state
    assert "1000/1000" in text and "loss=0.25" in text


def test_terminal_gets_redrawn_bar_and_final_newline():
    out = FakeTTY()
    with Progress(4, "work", stream=out) as bar:
        bar.set(4)
    assert out.getvalue().startswith("\rwork [") and out.getvalue().endswith("\n")


def test_disabled_bar_writes_nothing_and_early_stop_shows_position():
    out = io.StringIO()
    with Progress(10, stream=out, enabled=False) as bar:
        bar.update(3)
    assert out.getvalue() == ""
    with Progress(10, "x", stream=out) as bar:
        bar.update(3)
    assert "3/10" in out.getvalue()
