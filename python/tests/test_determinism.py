"""Bit-identical observations and rewards of the Python env and the Rust env.

The Rust side is the example python/examples/dump_steps.rs: the `synthetic` preset's
teacher env built with the plain Rust API (no binding code), stepped with the same
fixed mask pattern; it writes every observation's f32 bits and every reward's f64 bits.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
from conftest import SHORT, pattern_mask

import l2t

REPO = Path(__file__).resolve().parents[2]
SEED, STEPS = 4, 45


def rust_trace(tmp_path: Path) -> list[dict]:
    out = tmp_path / "trace.jsonl"
    subprocess.run(
        ["cargo", "run", "--quiet", "-p", "l2t-python", "--example", "dump_steps", "--",
         str(out), str(SEED), str(STEPS)],
        cwd=REPO, check=True,
    )
    return [json.loads(line) for line in out.read_text().splitlines()]


def python_trace() -> list[tuple[str, np.ndarray, float, bool, bool, dict]]:
    env = l2t.TeachingEnv("synthetic", teaching=SHORT, threads=1)
    obs, info = env.reset(seed=SEED)
    trace = [("reset", obs, 0.0, False, False, info)]
    for t in range(STEPS):
        obs, reward, terminated, truncated, info = env.step(pattern_mask(t, env.batch_size))
        trace.append(("step", obs, reward, terminated, truncated, info))
        if terminated or truncated:
            obs, info = env.reset()
            trace.append(("reset", obs, 0.0, False, False, info))
    return trace


def test_python_env_is_bit_identical_to_the_rust_env(tmp_path: Path) -> None:
    rust = rust_trace(tmp_path)
    python = python_trace()
    assert len(rust) == len(python) > STEPS
    rewards = []
    for r, (kind, obs, reward, terminated, truncated, info) in zip(rust, python):
        assert r["kind"] == kind
        assert list(r["shape"]) == list(obs.shape)
        bits = np.asarray(r["obs_bits"], dtype=np.uint32)
        assert np.array_equal(bits, obs.reshape(-1).view(np.uint32))
        assert int(r["reward_bits"]) == np.float64(reward).view(np.uint64)
        assert (r["terminated"], r["truncated"]) == (terminated, truncated)
        expected = {k: v for k, v in r["info"].items() if v is not None}
        assert expected == info
        rewards.append(reward)
    # Not vacuous: rewards were paid, episodes ended and restarted, observations moved.
    assert sum(1 for x in rewards if x != 0.0) >= 5
    assert sum(1 for r in rust if r["kind"] == "reset") >= 2
    assert len({tuple(r["obs_bits"][:50]) for r in rust}) > STEPS // 2
