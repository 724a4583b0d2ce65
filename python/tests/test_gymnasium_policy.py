"""The irreducible_loss feature through Gymnasium's own constructors (issue 35, item 4):
``gymnasium.make`` and ``gymnasium.make_vec`` (native and sync) take
``irreducible_loss=`` and give the columns of the preset's run, whose holdout losses
are the ones ``l2t.compare`` computes and caches (an evaluation env of the run and the
env of the same split and seed show the same first observation, bit for bit); and a
policy trained briefly through ``gymnasium.make`` goes into ``l2t.compare`` unchanged,
with the same columns and the same report rows as the built-in teachers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
from conftest import SHORT

import l2t

ID = "l2t/Synthetic-v0"


def test_make_and_make_vec_take_irreducible_loss() -> None:
    run_columns = l2t.TeachingEnv("synthetic").feature_names
    assert "irreducible_loss" in run_columns
    env = gymnasium.make(ID, irreducible_loss=True, teaching=SHORT)
    assert env.unwrapped.feature_names == run_columns
    column = run_columns.index("irreducible_loss")
    single, _ = env.reset(seed=3)
    values = single[:, column]
    assert np.all((values >= 0) & (values <= 1)) and np.ptp(values) > 0, values
    default = gymnasium.make(ID, teaching=SHORT)
    assert default.unwrapped.feature_names == run_columns
    plain = gymnasium.make(ID, irreducible_loss=False, teaching=SHORT)
    assert "irreducible_loss" not in plain.unwrapped.feature_names
    for vectorization in ["vector_entry_point", "sync"]:
        venv = gymnasium.make_vec(
            ID, num_envs=2, vectorization_mode=vectorization, irreducible_loss=True, teaching=SHORT
        )
        if isinstance(venv, l2t.TeachingVectorEnv):
            assert venv.feature_names == run_columns
        else:
            assert venv.get_attr("feature_names") == (run_columns, run_columns)
        obs, _ = venv.reset(seed=3)
        # Env 0 of a vector env seeded 3 is the single env seeded 3: same holdout losses.
        assert np.array_equal(obs[0], single), vectorization
        venv.close()
    for e in (env, default, plain):
        e.close()


def test_the_env_has_the_runs_holdout_losses(tmp_path: Path) -> None:
    """The first observation an l2t.compare teacher gets on evaluation seed s is the one
    ``TeachingEnv(split="student")`` gives at ``reset(seed=s)``: the same columns and
    the same irreducible losses (trained once, cached, read by both)."""
    seen: list[np.ndarray] = []

    def record(obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if not seen:
            seen.append(obs.copy())
        return np.ones(obs.shape[0], dtype=bool)

    l2t.compare("synthetic", {"record": record}, builtin=["no_teach"], seeds=1, first_seed=11,
                plots=False, out=tmp_path / "run")
    env = gymnasium.make(ID, split="student", irreducible_loss=True)
    obs, _ = env.reset(seed=11)
    assert np.array_equal(seen[0], obs)
    env.close()


def test_a_policy_trained_through_gymnasium_make_goes_into_compare_unchanged(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    sb3 = pytest.importorskip("stable_baselines3")
    # Trained through gymnasium.make on the (M, F) observations with the run's columns
    # (SB3's MlpPolicy flattens them itself); short episodes, a few hundred steps.
    env = gymnasium.make(ID, irreducible_loss=True, teaching=SHORT)
    model = sb3.PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=1, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(256)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))
    calls = 0

    def policy(obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        nonlocal calls
        # The run hands the policy what it was trained on: the same columns, by name.
        assert info["feature_names"] == env.unwrapped.feature_names
        assert obs.shape == env.observation_space.shape
        calls += 1
        return model.predict(obs, deterministic=True)[0]

    run = l2t.compare("synthetic", {"ppo": policy}, builtin=["no_teach"], seeds=1,
                      plots=False, out=tmp_path / "run")
    assert calls > 10
    assert run.labels == ["no_teach", "ppo"]
    # The same report columns as the built-in teacher's row.
    assert run.summary_of("ppo").keys() == run.summary_of("no_teach").keys()
    assert "| ppo" in run.summary or "`ppo`" in run.summary
    env.close()
