"""Shared settings of the l2t Python tests: short synthetic episodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _sb3_logs_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stable-Baselines3's `learn` makes a log folder, by default /tmp/SB3-<time>, and
    never removes it; $SB3_LOGDIR sends it to the test's own temporary folder."""
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3-logs"))

# Short episodes with a reward at every evaluation (the area under the dev-accuracy
# curve), so that rewards, terminations and autoresets all happen within a few dozen
# steps. dump_steps.rs builds the same config in Rust.
SHORT: dict[str, Any] = {
    "max_iterations": 30,
    "eval_every": 5,
    "reward": {"kind": "dev_accuracy_area", "iterations": 30},
}


def pattern_mask(t: int, m: int) -> np.ndarray:
    """The fixed mask of step t (the same formula as dump_steps.rs)."""
    i = np.arange(m)
    return ((t % 4 == 0) | ((t * 7 + i * 3) % 5 != 0)).astype(np.int8)


def assert_same(a: Any, b: Any, where: str) -> None:
    """Exact equality of nested dicts / arrays / scalars, dtypes included."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: {a.keys()} != {b.keys()}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert a.shape == b.shape and a.dtype == b.dtype, f"{where}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        if a.dtype == object:
            for i, (x, y) in enumerate(zip(a, b)):
                assert_same(x, y, f"{where}[{i}]")
        else:
            assert np.array_equal(a, b), where
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} != {b!r}"
