"""The built-in teachers from Python."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHORT

import l2t


def run_episode(env: l2t.TeachingEnv, act, seed: int) -> tuple[float, int, list[np.ndarray]]:
    obs, info = env.reset(seed=seed)
    total, steps, masks = 0.0, 0, []
    while True:
        mask = act(obs, info)
        masks.append(np.asarray(mask))
        obs, reward, terminated, truncated, info = env.step(mask)
        total += reward
        steps += 1
        if terminated or truncated:
            return total, steps, masks


def test_no_teach_equals_keeping_everything_on_the_same_seed() -> None:
    env = l2t.TeachingEnv("synthetic", teaching=SHORT)
    teacher = l2t.Teacher({"kind": "no_teach"}, env)
    assert teacher.name == "no_teach"
    by_teacher = run_episode(env, teacher.act, seed=5)
    by_hand = run_episode(env, lambda obs, info: np.ones(20, dtype=bool), seed=5)
    assert by_teacher[0] == by_hand[0] and by_teacher[1] == by_hand[1]
    assert by_teacher[0] > 0


@pytest.mark.parametrize(
    "config",
    [
        {"kind": "spl"},
        {"kind": "online_batch"},
        {"kind": "rand_teach", "drop_ratio": 0.3, "seed": 1},
        {"kind": "reinforce", "seed": 2},
        {"kind": "actor_critic", "seed": 2},
    ],
)
def test_built_in_teachers_act_on_python_observations(config: dict) -> None:
    env = l2t.TeachingEnv("synthetic", teaching=SHORT)
    teacher = l2t.Teacher(config, env)
    total, steps, masks = run_episode(env, teacher.act, seed=1)
    assert steps > 0 and all(m.shape == (20,) and m.dtype == np.int8 for m in masks)
    # The same teacher config on the same seed gives the same episode.
    again = l2t.Teacher(config, env)
    assert run_episode(env, again.act, seed=1)[0] == total


def test_teacher_errors() -> None:
    env = l2t.TeachingEnv("synthetic", teaching=SHORT)
    with pytest.raises(ValueError, match="mentor_net.*online_batch"):
        l2t.Teacher({"kind": "mentor_net"}, env)
    teacher = l2t.Teacher({"kind": "spl"}, env)
    obs, info = env.reset(seed=0)
    with pytest.raises(ValueError, match='info lacks "epochs"'):
        teacher.act(obs, {k: v for k, v in info.items() if k != "epochs"})
    with pytest.raises(ValueError, match=r"shape \(M, 26\)"):
        teacher.act(obs[:, :3].copy(), info)
    with pytest.raises(TypeError, match="float32"):
        teacher.act(obs.astype(np.float64), info)
