"""The single env: Gymnasium's checker, registration, spaces, info and errors."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from conftest import SHORT
from gymnasium.utils.env_checker import check_env

import l2t


def test_check_env_passes() -> None:
    env = l2t.TeachingEnv("synthetic", teaching=SHORT)
    check_env(env, skip_render_check=True)


def test_make_registered_ids() -> None:
    assert l2t.ENV_IDS["fashion-mnist-mlp"] == "l2t/FashionMnistMlp-v0"
    env = gymnasium.make("l2t/Synthetic-v0", seed=3, teaching=SHORT)
    assert env.spec is not None and env.spec.id == "l2t/Synthetic-v0"
    assert env.unwrapped.metadata["render_modes"] == []
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and obs.shape == (20, 25)
    assert obs in env.observation_space
    assert env.action_space == gymnasium.spaces.MultiBinary(20)
    # Per-column bounds: margin in [-1, 1], everything else in [0, 1].
    margin = env.unwrapped.feature_names.index("margin")
    assert env.observation_space.low[0, margin] == -1.0
    assert env.observation_space.low[0, 0] == 0.0
    assert env.observation_space.high.max() == 1.0
    env.close()


def test_make_seed_is_the_master_seed() -> None:
    # make(seed=s) then reset() equals reset(seed=s): the streams of the master seed.
    a = gymnasium.make("l2t/Synthetic-v0", seed=11, teaching=SHORT)
    b = gymnasium.make("l2t/Synthetic-v0", seed=0, teaching=SHORT)
    obs_a, _ = a.reset()
    obs_b, _ = b.reset(seed=11)
    assert np.array_equal(obs_a, obs_b)
    obs_c, _ = b.reset(seed=12)
    assert not np.array_equal(obs_a, obs_c)


@pytest.mark.skipif(
    not (l2t._l2t.data_dir() / "fashion-mnist").exists(),
    reason="Fashion-MNIST is not fetched (bash scripts/setup.sh fetches it)",
)
def test_make_fashion_mnist() -> None:
    env = gymnasium.make("l2t/FashionMnistMlp-v0", seed=0)
    obs, info = env.reset(seed=0)
    assert obs.shape == (20, 25)
    obs, reward, terminated, truncated, info = env.step(np.ones(20, dtype=bool))
    assert info["iteration"] == 1 and info["instances_kept"] == 20
    assert obs in env.observation_space


def test_info_holds_the_teaching_info_fields() -> None:
    env = l2t.TeachingEnv("synthetic", teaching=SHORT)
    _, info = env.reset(seed=0)
    # Before any update: no average training loss yet, no i_tau.
    assert "average_training_loss" not in info and "iterations_to_tau" not in info
    assert info["evaluated"] is True and info["threshold_iterations"] == [None]
    _, _, _, _, info = env.step(np.ones(20, dtype=np.int8))
    assert info["iteration"] == 1 and info["updates_this_step"] == 1
    assert info["average_training_loss"] > 0
    expected = {
        "iteration", "effective_instances", "incoming_batches", "instances_seen",
        "instances_kept", "buffered", "epochs", "dev_accuracy", "best_dev_accuracy",
        "average_training_loss", "updates_this_step", "evaluated", "threshold_iterations",
    }
    assert set(info) == expected


def test_wrong_actions_name_what_was_expected() -> None:
    env = l2t.TeachingEnv("synthetic", teaching=SHORT)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(20,\).*got shape \(19,\)"):
        env.step(np.ones(19, dtype=bool))
    with pytest.raises(ValueError, match=r"shape \(20,\)"):
        env.step(np.ones((20, 1), dtype=bool))
    with pytest.raises(TypeError, match=r"dtype bool or an integer dtype.*float64"):
        env.step(np.ones(20))
    with pytest.raises(ValueError, match="entries must be 0 or 1, found 2"):
        env.step(np.full(20, 2, dtype=np.int64))
    with pytest.raises(TypeError, match="numpy array of shape"):
        env.step("keep everything")
    # A list of 0/1 is converted; the env still works after the errors.
    env.step([1] * 20)


def test_bad_preset_missing_data_and_ended_episodes() -> None:
    with pytest.raises(ValueError, match='unknown preset "nope".*fashion-mnist-mlp'):
        l2t.TeachingEnv("nope")
    with pytest.raises(ValueError, match="split must be"):
        l2t.TeachingEnv("synthetic", split="dev")
    with pytest.raises(ValueError, match="max_iterations"):
        l2t.TeachingEnv("synthetic", teaching={"max_iterations": 0})
    with pytest.raises(ValueError, match="unknown field"):
        l2t.TeachingEnv("synthetic", teaching={"no_such_field": 1})
    with pytest.raises(FileNotFoundError, match=r"bash scripts/setup\.sh"):
        l2t.TeachingEnv("fashion-mnist-mlp", data_dir="/nonexistent/l2t-data")
    env = l2t.TeachingEnv("synthetic", teaching={**SHORT, "max_incoming_batches": 2})
    with pytest.raises(l2t.ResetNeeded, match="before reset"):
        env.step(np.ones(20, dtype=bool))
    env.reset(seed=0)
    env.step(np.zeros(20, dtype=bool))
    _, _, terminated, truncated, _ = env.step(np.zeros(20, dtype=bool))
    assert truncated and not terminated
    with pytest.raises(l2t.ResetNeeded, match="after the episode ended"):
        env.step(np.zeros(20, dtype=bool))
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step(np.zeros(20, dtype=bool))
    env.reset()
    env.step(np.zeros(20, dtype=bool))
    env.close()
    with pytest.raises(gymnasium.error.ClosedEnvironmentError):
        env.reset()


def test_another_thread_gets_a_runtime_error() -> None:
    import threading

    env = l2t.TeachingEnv("synthetic", teaching=SHORT)
    env.reset(seed=0)
    errors: list[BaseException] = []

    def step() -> None:
        try:
            env.step(np.ones(20, dtype=bool))
        except BaseException as error:  # noqa: BLE001 - recorded for the assertion
            errors.append(error)

    thread = threading.Thread(target=step)
    thread.start()
    thread.join()
    assert len(errors) == 1 and type(errors[0]) is RuntimeError, errors
    assert "thread that made it" in str(errors[0])
    env.step(np.ones(20, dtype=bool))


def test_observations_are_numpy_arrays_owned_by_the_caller() -> None:
    env = l2t.TeachingEnv("synthetic", teaching=SHORT)
    first, _ = env.reset(seed=0)
    assert first.flags.c_contiguous and first.flags.writeable and first.flags.owndata is False
    kept = first.copy()
    env.step(np.ones(20, dtype=bool))
    # The next step did not write into the array the caller holds.
    assert np.array_equal(first, kept)


def test_dev_loss_is_in_the_info_when_the_reward_measures_it() -> None:
    env = l2t.TeachingEnv(
        "synthetic",
        teaching={**SHORT, "reward": {"kind": "dev_loss_decrease", "iterations": 30}},
    )
    _, info = env.reset(seed=0)
    assert info["dev_loss"] > 0
    total = 0.0
    for _ in range(5):
        _, reward, _, _, info = env.step(np.ones(20, dtype=bool))
        total += reward
    # Five updates, one evaluation: the reward is the drop of the dev loss.
    assert info["evaluated"] and total != 0.0
    assert "dev_loss" not in l2t.TeachingEnv("synthetic", teaching=SHORT).reset(seed=0)[1]
