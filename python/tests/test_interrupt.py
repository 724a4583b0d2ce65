"""Ctrl-C that cancels and one run per folder (issue 36, items 1 and 3): SIGINT sent to
a real Python process running ``l2t.compare`` or ``l2t.train`` raises KeyboardInterrupt
within seconds, with every line of the run's logs complete; a folder holding another
config's run is refused, and ``fresh=True`` clears it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import l2t

COMPARE = textwrap.dedent(
    """
    import signal
    import sys
    import numpy as np
    import l2t

    # Ctrl-C as in a terminal: a process started in the background (CI's jobs) inherits
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def keep_all(obs, info):
        return np.ones(obs.shape[0], dtype=bool)

    l2t.compare("synthetic", {"mine": keep_all}, builtin=["no_teach"], seeds=2000,
                plots=False, out=sys.argv[1])
    print("finished", flush=True)
    """
)

TRAIN = textwrap.dedent(
    """
    import signal
    import sys
    import l2t

    signal.signal(signal.SIGINT, signal.default_int_handler)
    l2t.train("synthetic", "es", episodes=20000, seeds=1, plots=False, out=sys.argv[1])
    print("finished", flush=True)
    """
)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def interrupt(script: str, out: Path, log: Any) -> tuple[int, str, float]:
    """Runs `script`, sends SIGINT once `log()` names a file with 2 lines or more, and
    returns the exit status, stderr and the seconds from SIGINT to the exit. The child's
    output goes to a file beside `out`, never to a pipe nobody reads while it runs."""
    out.mkdir(parents=True, exist_ok=True)
    stderr_path = out.parent / f"{out.name}-stderr.txt"
    with open(stderr_path, "w") as stderr_file:
        child = subprocess.Popen(
            [sys.executable, "-c", script, os.fspath(out)],
            stdout=subprocess.DEVNULL,
            stderr=stderr_file,
            text=True,
        )
        try:
            start = time.monotonic()
            while True:
                path = log()
                if path is not None and len(lines(path)) >= 2:
                    break
                assert child.poll() is None, stderr_path.read_text()
                assert time.monotonic() - start < 180, "no progress"
                time.sleep(0.02)
            child.send_signal(signal.SIGINT)
            sent = time.monotonic()
            try:
                child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    "no exit 120 s after SIGINT; stderr:\n" + stderr_path.read_text()
                ) from None
            return child.returncode, stderr_path.read_text(), time.monotonic() - sent
        finally:
            if child.poll() is None:
                child.kill()


def assert_complete(path: Path) -> int:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "a cut last line"
    for line in text.splitlines():
        json.loads(line)
    return len(text.splitlines())


def test_sigint_cancels_a_comparison(tmp_path: Path) -> None:
    out = tmp_path / "run"
    events = out / "events.jsonl"
    code, stderr, seconds = interrupt(COMPARE, out, lambda: events)
    print(f"l2t.compare stopped {seconds:.2f} s after SIGINT")
    assert code != 0 and "KeyboardInterrupt" in stderr, stderr
    assert "finished" not in stderr
    assert seconds < 5, f"{seconds:.2f} s to stop"
    assert 2 <= assert_complete(events) < 4000


def test_sigint_cancels_a_training(tmp_path: Path) -> None:
    out = tmp_path / "run"

    def history() -> Path | None:
        found = sorted(out.glob("*-training.jsonl"))
        return found[0] if found else None

    code, stderr, seconds = interrupt(TRAIN, out, history)
    print(f"l2t.train stopped {seconds:.2f} s after SIGINT")
    assert code != 0 and "KeyboardInterrupt" in stderr, stderr
    assert seconds < 5, f"{seconds:.2f} s to stop"
    path = history()
    assert path is not None and 2 <= assert_complete(path) < 20000
    assert list(out.glob("*.ckpt")), "no checkpoint saved"


def keep_all(obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    return np.ones(obs.shape[0], dtype=bool)


def test_a_folder_of_another_run_is_refused_and_fresh_clears_it(tmp_path: Path) -> None:
    l2t.compare("synthetic", {"mine": keep_all}, builtin=["no_teach"], seeds=1, out=tmp_path)
    stale = tmp_path / "convergence.png"
    if not stale.exists():
        stale.write_bytes(b"a figure of the first run")
    with pytest.raises(FileExistsError, match=r"another run.*eval_seeds.*fresh=True"):
        l2t.compare(
            "synthetic", {"mine": keep_all}, builtin=["no_teach"], seeds=2, plots=False, out=tmp_path
        )
    assert stale.exists()
    run = l2t.compare(
        "synthetic",
        {"mine": keep_all},
        builtin=["no_teach"],
        seeds=2,
        plots=False,
        out=tmp_path,
        fresh=True,
    )
    assert not stale.exists()
    assert len(run.report["evaluations"]) == 4
