"""Shared settings of the l2t Python tests: short synthetic episodes."""

from __future__ import annotations

from typing import Any

import numpy as np

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
