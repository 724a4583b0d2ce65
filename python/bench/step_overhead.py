"""Overhead of the Python binding on one env step, against the Rust env, in one run.

    L2T_PYTHON_RELEASE=1 bash scripts/setup.sh          # the extension, optimised
    .venv/bin/python python/bench/step_overhead.py [--steps 3000] [--rounds 5]

Each round steps the same preset's teacher env with the same seed and mask pattern
four ways, in turn: in Rust in its own process (python/examples/step_loop.rs, release
build), in Rust inside the Python process (the same loop over the same native env
object, ``Core._rust_step_loop``: same build, same memory, no binding on the path),
through ``l2t.TeachingEnv.step`` and through ``gymnasium.make(...)``
(Gymnasium's default wrappers: the passive env checker and the order enforcer). Only
the time inside ``step`` counts (resets excluded). Prints the minimum and the median over
the rounds of the seconds per step of each, and their ratios to Rust in-process (the
minimum is the least disturbed by other load on the machine). Then the paired ratio,
the least noisy figure: over the very same Python ``step`` calls, their wall time
divided by the time spent inside the Rust env's ``step`` (timed by the native core).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import gymnasium
import numpy as np

import l2t

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python" / "tests"))
from conftest import pattern_mask  # noqa: E402


def rust_round(preset: str, steps: int, seed: int) -> tuple[float, float]:
    out = subprocess.run(
        ["cargo", "run", "--quiet", "--release", "-p", "l2t-python", "--example", "step_loop",
         "--", preset, str(steps), str(seed)],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["seconds"] / steps, result["checksum"]


def inprocess_round(env: l2t.TeachingEnv, steps: int, seed: int) -> tuple[float, float]:
    seconds, checksum = env._core._rust_step_loop(steps, seed)
    return seconds / steps, checksum


PAIRED: dict[str, list[float]] = {}


def python_round(env: gymnasium.Env, steps: int, seed: int, name: str = "") -> tuple[float, float]:
    m = env.action_space.n
    masks = [pattern_mask(t, m).astype(bool) for t in range(steps)]
    env.reset(seed=seed)
    core = env.unwrapped._core
    inside = core._rust_step_seconds
    seconds, checksum = 0.0, 0.0
    for t in range(steps):
        start = time.perf_counter()
        obs, reward, terminated, truncated, _ = env.step(masks[t])
        seconds += time.perf_counter() - start
        checksum += reward + float(obs[0, 0])
        if terminated or truncated:
            env.reset()
    # Paired: the time of these very calls spent inside the Rust step.
    PAIRED.setdefault(name, []).append(seconds / (core._rust_step_seconds - inside))
    return seconds / steps, checksum


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", action="append", help="presets (default: synthetic, fashion-mnist-mlp)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "l2t-python", "--example", "step_loop"],
                   cwd=REPO, check=True)
    print(f"# {platform.processor() or platform.machine()}, nproc {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.2f}, {args.steps} steps x {args.rounds} rounds, libtorch threads 1")
    for preset in args.preset or ["synthetic", "fashion-mnist-mlp"]:
        direct = l2t.TeachingEnv(preset, threads=1)
        made = gymnasium.make(l2t.env_id(preset), threads=1)
        times: dict[str, list[float]] = {"rust (process)": [], "rust (in-process)": [], "python": [], "gymnasium.make": []}
        checks = set()
        for _ in range(args.rounds):
            for name, run in [
                ("rust (process)", lambda: rust_round(preset, args.steps, args.seed)),
                ("rust (in-process)", lambda: inprocess_round(direct, args.steps, args.seed)),
                ("python", lambda: python_round(direct, args.steps, args.seed, "python")),
                ("gymnasium.make", lambda: python_round(made, args.steps, args.seed, "gymnasium.make")),
            ]:
                seconds, checksum = run()
                times[name].append(seconds)
                checks.add(round(checksum, 6))
        # Same episodes everywhere: one checksum of rewards and observations.
        assert len(checks) == 1, f"the three loops saw different episodes: {checks}"
        base_min = min(times["rust (in-process)"])
        base_median = statistics.median(times["rust (in-process)"])
        for name, values in times.items():
            low, median = min(values), statistics.median(values)
            print(f"{preset:18s} {name:18s} min {low * 1e3:7.4f} ms/step (ratio {low / base_min:5.3f})  "
                  f"median {median * 1e3:7.4f} (ratio {median / base_median:5.3f})")
        for name in ["python", "gymnasium.make"]:
            ratios = PAIRED.pop(name)
            print(f"{preset:18s} paired {name:14s} wall time of the step calls / time inside the Rust step: "
                  f"median {statistics.median(ratios):6.4f}, min {min(ratios):6.4f}")
    print(f"# load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
