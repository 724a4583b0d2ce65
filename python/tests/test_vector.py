"""The Rust vector env against Gymnasium's SyncVectorEnv over the single env."""

from __future__ import annotations

import threading
import time
from typing import Any

import gymnasium
import numpy as np
import pytest
from conftest import SHORT, assert_same, pattern_mask
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import l2t

N = 3


def actions(t: int, m: int) -> np.ndarray:
    return np.stack([pattern_mask(t + 3 * i, m) for i in range(N)])


@pytest.mark.parametrize("workers", [1, 2])
def test_vector_env_equals_sync_vector_env(workers: int) -> None:
    ours = l2t.TeachingVectorEnv("synthetic", N, teaching=SHORT, num_workers=workers)
    reference = SyncVectorEnv(
        [lambda: l2t.TeachingEnv("synthetic", teaching=SHORT) for _ in range(N)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    assert ours.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert ours.observation_space == reference.observation_space
    assert ours.action_space == reference.action_space
    assert_same(ours.reset(seed=7), reference.reset(seed=7), "reset")
    ended = 0
    for t in range(70):
        a = actions(t, ours.batch_size)
        got, want = ours.step(a), reference.step(a)
        for name, x, y in zip(["obs", "rewards", "terminated", "truncated", "infos"], got, want):
            assert_same(x, y, f"step {t} {name}")
        ended += int(np.sum(got[2] | got[3]))
    # Not vacuous: episodes ended (and were reset in the same step) in every env.
    assert ended >= N
    assert_same(ours.reset(), reference.reset(), "reset(None)")
    ours.close()
    reference.close()


def test_make_vec_and_errors() -> None:
    env = gymnasium.make_vec("l2t/Synthetic-v0", num_envs=2, vectorization_mode="vector_entry_point", teaching=SHORT)
    assert isinstance(env, l2t.TeachingVectorEnv) and env.num_envs == 2
    with pytest.raises(l2t.ResetNeeded):
        env.step(np.ones((2, 20), dtype=bool))
    obs, infos = env.reset(seed=[5, 6])
    assert obs.shape == (2, 20, 26) and obs.dtype == np.float32
    with pytest.raises(ValueError, match=r"length must match num_envs=2"):
        env.reset(seed=[5, 6, 7])
    with pytest.raises(ValueError, match=r"shape \(2, 20\).*got shape \(20,\)"):
        env.step(np.ones(20, dtype=bool))
    with pytest.raises(ValueError, match=r"the actions must be an array of shape \(2, 20\) .*found 0.5"):
        env.step(np.full((2, 20), 0.5, dtype=np.float32))
    with pytest.raises(TypeError, match="got str"):
        env.step("keep")
    # Float 0/1 (SB3's policies, torch samples) and lists are actions too, as the single
    # env's space contains them (the batched space, Box(0, 1, (2, 20), int8), checks the
    # dtype and would refuse float32).
    float_actions = np.ones((2, 20), dtype=np.float32)
    assert all(env.single_action_space.contains(row) for row in float_actions)
    _, _, _, _, infos = env.step(float_actions)
    assert list(infos["instances_kept"]) == [20, 20]
    _, _, _, _, infos = env.step([[0] * 20, [1] * 10 + [0] * 10])
    assert list(infos["instances_kept"]) == [20, 30]
    env.close()


def test_flatten_and_render_mode() -> None:
    with pytest.warns(UserWarning, match="l2t envs do not render"):
        flat = gymnasium.make_vec(
            "l2t/Synthetic-v0", num_envs=N, vectorization_mode="vector_entry_point",
            teaching=SHORT, flatten=True, render_mode="rgb_array",
        )
    assert flat.render_mode is None
    with pytest.warns(UserWarning, match="does not render"):
        assert flat.render() is None
    matrix = l2t.TeachingVectorEnv("synthetic", N, teaching=SHORT)
    assert flat.single_observation_space.shape == (520,)
    assert flat.observation_space.shape == (N, 520)
    got, _ = flat.reset(seed=1)
    want, _ = matrix.reset(seed=1)
    assert np.array_equal(got, want.reshape(N, -1))
    ended = 0
    for t in range(40):
        a = actions(t, 20)
        got, _, terminated, truncated, got_infos = flat.step(a)
        want, _, _, _, want_infos = matrix.step(a)
        assert got in flat.observation_space and np.array_equal(got, want.reshape(N, -1))
        for i in np.flatnonzero(terminated | truncated):
            ended += 1
            assert got_infos["final_obs"][i].shape == (520,)
            assert np.array_equal(got_infos["final_obs"][i], want_infos["final_obs"][i].reshape(-1))
    assert ended >= N
    flat.close()
    matrix.close()


def count_for(seconds: float, busy: Any = None) -> int:
    """Increments a counter in a Python thread for `seconds`, while `busy` runs."""
    counts: list[int] = []
    stop = threading.Event()

    def count() -> None:
        n = 0
        while not stop.is_set():
            n += 1
        counts.append(n)

    ticker = threading.Thread(target=count)
    ticker.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if busy is not None:
            busy()
        else:
            time.sleep(0.001)
    stop.set()
    ticker.join()
    return counts[0]


def test_step_releases_the_gil() -> None:
    # One student update and one dev evaluation per step: milliseconds in Rust.
    env = l2t.TeachingVectorEnv("synthetic", 2, teaching={**SHORT, "eval_every": 1}, num_workers=1)
    env.reset(seed=0)
    keep = np.ones((2, 20), dtype=bool)
    alone = count_for(0.5)
    stepping = count_for(0.5, lambda: env.step(keep))
    env.close()
    # Held through the Rust steps, the GIL would let the counting thread run only
    # between steps (a small share of the time); released, it runs beside them.
    assert stepping > 0.25 * alone, (stepping, alone)
