"""The vector env's three autoreset modes and masked resets, step for step against
Gymnasium's ``SyncVectorEnv`` of the single env (same seeds, same actions), and the
vector envs ``gymnasium.make_vec`` gives in each vectorization mode."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from conftest import SHORT, assert_same, pattern_mask
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

import l2t

N = 3
ID = "l2t/Synthetic-v0"
M = 20


def actions(t: int, n: int = N) -> np.ndarray:
    return np.stack([pattern_mask(t + 3 * i, M) for i in range(n)])


def reference(mode: AutoresetMode, n: int = N) -> SyncVectorEnv:
    """Gymnasium's own vector env of the single env, in ``mode``."""
    return SyncVectorEnv(
        [lambda: l2t.TeachingEnv("synthetic", teaching=SHORT) for _ in range(n)],
        autoreset_mode=mode,
    )


def lockstep(
    ours: VectorEnv, want: VectorEnv, mode: AutoresetMode, steps: int, n: int = N
) -> dict[str, int]:
    """Steps both envs with the same actions and checks every result equal: the
    observations, rewards, terminations, truncations and infos (final_obs and
    final_info included). Under DISABLED the ended envs are reset with a mask (seeds:
    a list, then None, in turn); in every mode, step 13 resets envs 0 and 2 mid-episode
    with a mask and an int seed. Returns counts that show the run was not vacuous."""
    assert_same(ours.reset(seed=7), want.reset(seed=7), "reset(seed=7)")
    ended = np.zeros(n, dtype=bool)
    counts = {"ended": 0, "masked resets": 0, "next-step resets": 0, "refused": 0}
    for t in range(steps):
        if mode == AutoresetMode.DISABLED and ended.any():
            if isinstance(ours, l2t.TeachingVectorEnv):
                # Nothing steps while an env's episode has ended, so the run goes on equal.
                with pytest.raises(l2t.ResetNeeded, match=f"env {np.flatnonzero(ended)[0]} "):
                    ours.step(actions(t, n))
                counts["refused"] += 1
            seed = [100 + t + i for i in range(n)] if counts["masked resets"] % 2 else None
            got = ours.reset(seed=seed, options={"reset_mask": ended.copy()})
            assert_same(got, want.reset(seed=seed, options={"reset_mask": ended.copy()}), f"masked reset {t}")
            counts["masked resets"] += 1
        if t == 13:
            mask = np.arange(n) % 2 == 0
            got = ours.reset(seed=50, options={"reset_mask": mask})
            assert_same(got, want.reset(seed=50, options={"reset_mask": mask.copy()}), "mid-episode reset")
        a = actions(t, n)
        got, expected = ours.step(a), want.step(a)
        for name, x, y in zip(["obs", "rewards", "terminated", "truncated", "infos"], got, expected):
            assert_same(x, y, f"{mode.value} step {t} {name}")
        if mode == AutoresetMode.NEXT_STEP:
            counts["next-step resets"] += int(ended.sum())
        ended = got[2] | got[3]
        counts["ended"] += int(ended.sum())
        assert ("final_obs" in got[4]) == (mode == AutoresetMode.SAME_STEP and bool(ended.any()))
    return counts


@pytest.mark.parametrize("mode", list(AutoresetMode), ids=lambda m: m.value)
@pytest.mark.parametrize("workers", [1, 2])
def test_each_mode_equals_sync_vector_env(mode: AutoresetMode, workers: int) -> None:
    ours = l2t.TeachingVectorEnv("synthetic", N, teaching=SHORT, num_workers=workers, autoreset_mode=mode)
    assert ours.autoreset_mode is mode and ours.metadata["autoreset_mode"] is mode
    # The class's metadata (the default, SAME_STEP) is not changed by an instance.
    assert l2t.TeachingVectorEnv.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    want = reference(mode)
    counts = lockstep(ours, want, mode, 80)
    # Episodes ended in every env, and each mode's reset happened.
    assert counts["ended"] >= N, counts
    if mode == AutoresetMode.NEXT_STEP:
        assert counts["next-step resets"] >= N, counts
    if mode == AutoresetMode.DISABLED:
        assert counts["masked resets"] >= 2 and counts["refused"] == counts["masked resets"], counts
    assert_same(ours.reset(), want.reset(), "reset(None)")
    ours.close()
    want.close()


def test_modes_by_value_and_bad_arguments() -> None:
    env = l2t.TeachingVectorEnv("synthetic", 2, teaching=SHORT, autoreset_mode="NextStep")
    assert env.autoreset_mode is AutoresetMode.NEXT_STEP
    with pytest.raises(ValueError, match=r"autoreset_mode must be .*'NextStep', 'SameStep', 'Disabled'.*got 'same_step'"):
        l2t.TeachingVectorEnv("synthetic", 2, teaching=SHORT, autoreset_mode="same_step")
    # reset_mask is checked as SyncVectorEnv checks it, with its exceptions.
    env.reset(seed=0)
    with pytest.raises(TypeError, match="must be a numpy array"):
        env.reset(options={"reset_mask": [True, False]})
    with pytest.raises(ValueError, match=r"must have shape `\(2,\)`"):
        env.reset(options={"reset_mask": np.ones(3, dtype=bool)})
    with pytest.raises(TypeError, match="must have `dtype=np.bool_`"):
        env.reset(options={"reset_mask": np.ones(2, dtype=np.int8)})
    with pytest.raises(ValueError, match="at least one True"):
        env.reset(options={"reset_mask": np.zeros(2, dtype=bool)})
    with pytest.raises(ValueError, match=r"no options but reset_mask, got \['foo'\]"):
        env.reset(options={"foo": 1})
    with pytest.raises(ValueError, match=r"seed must be None or an integer in \[0, 2\*\*64\), got -1"):
        env.reset(seed=[-1, None])
    # The caller's options are not changed (SyncVectorEnv pops reset_mask from them).
    options = {"reset_mask": np.array([False, True])}
    obs, infos = env.reset(options=options)
    assert "reset_mask" in options and list(infos["_iteration"]) == [False, True]
    env.close()


def test_make_vec_vector_entry_point_gives_the_native_env() -> None:
    # The default vectorization mode of an id with a vector entry point, SAME_STEP.
    env = gymnasium.make_vec(ID, num_envs=2, teaching=SHORT)
    assert isinstance(env, l2t.TeachingVectorEnv)
    assert env.autoreset_mode is AutoresetMode.SAME_STEP
    env.close()
    for mode in AutoresetMode:
        env = gymnasium.make_vec(
            ID, num_envs=2, vectorization_mode="vector_entry_point", teaching=SHORT, autoreset_mode=mode
        )
        assert isinstance(env, l2t.TeachingVectorEnv) and env.metadata["autoreset_mode"] is mode
        assert env.spec is not None and env.spec.kwargs["autoreset_mode"] is mode
        env.close()
    # Gymnasium passes vector_kwargs to its own vectorizers only; the native env takes
    # autoreset_mode as a keyword argument (above).
    with pytest.raises(gymnasium.error.Error, match="vector_kwargs"):
        gymnasium.make_vec(
            ID, num_envs=2, vectorization_mode="vector_entry_point",
            vector_kwargs={"autoreset_mode": AutoresetMode.NEXT_STEP},
        )


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_make_vec_sync_and_async_are_gymnasiums_with_its_semantics(vectorization: str) -> None:
    kinds = {"sync": SyncVectorEnv, "async": AsyncVectorEnv}
    # Gymnasium's vectorizers with their documented default, NEXT_STEP (no final_obs:
    # the step after the end resets), whatever the native env's default is.
    env = gymnasium.make_vec(ID, num_envs=2, vectorization_mode=vectorization, teaching=SHORT)
    assert type(env) is kinds[vectorization]
    assert env.autoreset_mode is AutoresetMode.NEXT_STEP
    assert env.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    env.close()
    # vector_kwargs={"autoreset_mode": ...} passes through, and each mode gives the
    # native env's results step for step.
    for mode in AutoresetMode:
        env = gymnasium.make_vec(
            ID, num_envs=2, vectorization_mode=vectorization, teaching=SHORT,
            vector_kwargs={"autoreset_mode": mode},
        )
        assert type(env) is kinds[vectorization] and env.metadata["autoreset_mode"] is mode
        native = l2t.TeachingVectorEnv("synthetic", 2, teaching=SHORT, autoreset_mode=mode)
        counts = lockstep(native, env, mode, 70, n=2)
        assert counts["ended"] >= 2, counts
        native.close()
        env.close()


def test_record_episode_statistics_counts_steps_not_student_iterations() -> None:
    """What an episode's length counts (docs/python.md): steps, i.e. incoming batches,
    of which a teacher that drops instances needs more per student iteration."""
    env = gymnasium.wrappers.vector.RecordEpisodeStatistics(
        l2t.TeachingVectorEnv("synthetic", 2, teaching=SHORT)
    )
    env.reset(seed=0)
    half = np.zeros((2, M), dtype=bool)
    half[:, ::2] = True  # keeps 10 of 20: one student iteration every 2 steps
    lengths: list[int] = []
    iterations: list[int] = []
    for _ in range(200):
        _, _, terminated, truncated, infos = env.step(half)
        for i in np.flatnonzero(terminated | truncated):
            lengths.append(int(infos["episode"]["l"][i]))
            iterations.append(int(infos["final_info"]["iteration"][i]))
    assert lengths and iterations
    assert all(n == SHORT["max_iterations"] for n in iterations), iterations
    assert all(length == 2 * n for length, n in zip(lengths, iterations)), (lengths, iterations)
    env.close()



def test_sb3_vec_env_takes_only_same_step() -> None:
    pytest.importorskip("stable_baselines3")
    from l2t.sb3 import SB3VecEnv

    with pytest.raises(ValueError, match="autoreset_mode SAME_STEP"):
        SB3VecEnv(l2t.TeachingVectorEnv("synthetic", 2, teaching=SHORT, autoreset_mode="NextStep"))


def test_the_rllib_option_multi_discrete_and_flat_observations() -> None:
    """RLlib's catalog takes neither MultiBinary actions nor 2-D Box observations; the
    documented option, ``flatten=True, multi_discrete=True``, gives MultiDiscrete([2] *
    M) keep-masks and vector observations, which Gymnasium's env checker passes and which
    step exactly as the MultiBinary env does. (RLlib itself, ray[rllib] 2.60, pins
    gymnasium 1.2.2 and is not installed here: PPO through this option was run by hand,
    see docs/python.md.)"""
    from gymnasium.utils.env_checker import check_env

    env = gymnasium.make(ID, teaching=SHORT, flatten=True, multi_discrete=True)
    assert env.action_space == gymnasium.spaces.MultiDiscrete([2] * M)
    assert env.observation_space.shape == (M * 26,)
    check_env(env.unwrapped, skip_render_check=True)
    binary = gymnasium.make(ID, teaching=SHORT, flatten=True)
    assert_same(env.reset(seed=4), binary.reset(seed=4), "reset")
    env.action_space.seed(0)
    for t in range(40):
        action = env.action_space.sample()
        assert action.dtype == np.int64
        assert_same(env.step(action), binary.step(action.astype(np.int8)), f"step {t}")
    venv = l2t.TeachingVectorEnv("synthetic", 2, teaching=SHORT, flatten=True, multi_discrete=True)
    assert venv.single_action_space == env.action_space
    assert venv.action_space == gymnasium.vector.utils.batch_space(env.action_space, 2)
    venv.reset(seed=0)
    venv.step(venv.action_space.sample())
    for e in (env, binary, venv):
        e.close()
