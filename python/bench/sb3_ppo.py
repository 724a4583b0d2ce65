"""Stable-Baselines3 PPO's training speed on an l2t preset, in steps per second.

    .venv/bin/python python/bench/sb3_ppo.py [--preset synthetic] [--steps 8192] [--rounds 3]

SB3's default PPO (``PPO("MlpPolicy", venv)``: 2048 steps per env per rollout, 10
epochs of minibatches of 64), 2 envs with flat observations (``flatten=True``), the
preset's own teaching config, seed 0. Each round builds a fresh model and times
``learn(steps)`` alone (env and model construction excluded), two ways in turn:

- ``make_vec_env``: SB3's own ``make_vec_env(id, n_envs)``, a ``DummyVecEnv`` of
  :class:`l2t.TeachingEnv` stepped one after the other, as an unmodified SB3 script;
- ``SB3VecEnv``: :class:`l2t.sb3.SB3VecEnv` over :class:`l2t.TeachingVectorEnv`, the
  envs stepped at once on Rust worker threads (in ``VecMonitor``, as SB3 would log).

Prints the minimum, median and maximum steps/s over the rounds of each, as JSON last.
The figure depends on the build of the extension (``L2T_PYTHON_RELEASE=1`` for the
optimised one) and on the other load of the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import l2t
from l2t.sb3 import SB3VecEnv
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecMonitor


def make_dummy(preset: str, n_envs: int) -> VecEnv:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render_mode")
        return make_vec_env(l2t.env_id(preset), n_envs=n_envs, seed=0, env_kwargs={"flatten": True})


def make_rust(preset: str, n_envs: int) -> VecEnv:
    return VecMonitor(SB3VecEnv(l2t.TeachingVectorEnv(preset, n_envs, flatten=True)))


def one_round(make: Callable[[str, int], VecEnv], preset: str, n_envs: int, steps: int) -> float:
    venv = make(preset, n_envs)
    model = PPO("MlpPolicy", venv, seed=0, device="cpu")
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    venv.close()
    return model.num_timesteps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="synthetic")
    parser.add_argument("--steps", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-envs", type=int, default=2)
    args = parser.parse_args()
    ways = {"make_vec_env": make_dummy, "SB3VecEnv": make_rust}
    rates: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, make in ways.items():
            rates[name].append(one_round(make, args.preset, args.n_envs, args.steps))
    import stable_baselines3
    import torch

    summary = {
        "preset": args.preset,
        "steps": args.steps,
        "rounds": args.rounds,
        "n_envs": args.n_envs,
        "sb3": stable_baselines3.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_average": os.getloadavg()[0],
        "steps_per_second": {
            name: {
                "min": round(min(r), 1),
                "median": round(statistics.median(r), 1),
                "max": round(max(r), 1),
            }
            for name, r in rates.items()
        },
    }
    for name, r in rates.items():
        print(
            f"{name:>13}: {statistics.median(r):7.1f} steps/s median "
            f"(min {min(r):.1f}, max {max(r):.1f}, {args.rounds} rounds of {args.steps} steps)"
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
