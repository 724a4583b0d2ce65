"""The single env: Gymnasium's checker, registration, spaces, info and errors."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
from conftest import SHORT, pattern_mask
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
    assert obs.dtype == np.float32 and obs.shape == (20, 26)
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
    assert obs.shape == (20, 26)
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
        "incoming_indices", "compute",
    }
    assert set(info) == expected
    # FLOPs so far: two batches scored (the first and the one now shown), one update,
    # two dev evaluations.
    compute = info["compute"]
    assert set(compute) == {"scoring", "training", "measurement"}
    assert compute["scoring"] > 0 and compute["training"] > 0 and compute["measurement"] > 0
    # The incoming batch's rows as indices into the training split.
    indices = info["incoming_indices"]
    assert len(indices) == 20 and len(set(indices)) == 20
    assert all(isinstance(i, int) and 0 <= i < 6000 for i in indices)


def pattern_masks() -> list[np.ndarray]:
    """Five steps' keep-masks of the test pattern, as bool."""
    return [pattern_mask(t, 20).astype(bool) for t in range(5)]


@pytest.mark.parametrize(
    "convert",
    [
        lambda m: m.astype(np.float32),  # what SB3's policies give
        lambda m: m.astype(np.float64),
        lambda m: m.astype(np.float16),
        lambda m: np.where(m, 1.0, -0.0),  # -0.0 == 0
        lambda m: m.astype(np.int8),
        lambda m: m.astype(np.uint8),
        lambda m: m.astype(np.int64),
        lambda m: m.astype(np.complex64),
        lambda m: m.astype(np.float32).astype(">f4"),  # non-native byte order
        lambda m: m.astype(object),
        lambda m: np.repeat(m.astype(np.float32), 2)[::2],  # not contiguous
        lambda m: [int(x) for x in m],
        lambda m: [bool(x) for x in m],
        lambda m: [float(x) for x in m],
        lambda m: tuple(int(x) for x in m),
    ],
    ids=[
        "float32", "float64", "float16", "negative-zero", "int8", "uint8", "int64",
        "complex64", "big-endian", "object", "strided", "int-list", "bool-list",
        "float-list", "tuple",
    ],
)
def test_every_action_the_space_contains_is_accepted(convert: Any) -> None:
    # The same steps as with bool masks: the conversion keeps exactly the 1 entries.
    env = l2t.TeachingEnv("synthetic", teaching=SHORT)
    reference = l2t.TeachingEnv("synthetic", teaching=SHORT)
    env.reset(seed=4)
    reference.reset(seed=4)
    for mask in pattern_masks():
        action = convert(mask)
        assert env.action_space.contains(action)
        got = env.step(action)
        want = reference.step(mask)
        assert np.array_equal(got[0], want[0]) and got[1:] == want[1:]
        assert got[4]["instances_kept"] == want[4]["instances_kept"]
    assert want[4]["instances_kept"] < want[4]["instances_seen"]


M_EXPECTED = r"shape \(20,\) holding only 0 and 1 \(dtype bool, integer or float\)"


@pytest.mark.parametrize(
    "action, error, found",
    [
        (np.ones(19, dtype=bool), ValueError, r"got shape \(19,\)"),
        (np.ones((20, 1), dtype=np.float32), ValueError, r"got shape \(20, 1\)"),
        (np.full(20, 0.5, dtype=np.float32), ValueError, "found 0.5"),
        (np.full(20, np.nan), ValueError, "found NaN"),
        (np.full(20, np.inf, dtype=np.float32), ValueError, "found inf"),
        (np.full(20, 2, dtype=np.int64), ValueError, "found 2"),
        (np.full(20, -1, dtype=np.int8), ValueError, "found -1"),
        (np.full(20, 0.5, dtype=np.float16), ValueError, "found 0.5"),
        (np.full(20, 1 + 1j), ValueError, r"found \(1\+1j\)"),
        (np.array([None] * 20), ValueError, "found None"),
        ([1] * 19 + [3], ValueError, "found 3"),
        ([[1] * 20, [1]], ValueError, "numpy cannot convert"),
        (np.array(["1"] * 20), TypeError, "got dtype <U1"),
        ("keep everything", TypeError, "got str"),
        (None, TypeError, "got NoneType"),
    ],
    ids=[
        "short", "2d", "half", "nan", "inf", "two", "minus-one", "float16-half", "complex",
        "object-none", "list-three", "ragged-list", "strings", "str", "none",
    ],
)
def test_wrong_actions_name_what_was_expected(action: Any, error: type, found: str) -> None:
    env = l2t.TeachingEnv("synthetic", teaching=SHORT)
    env.reset(seed=0)
    # What the space refuses (a ragged list makes its contains raise), the env refuses,
    # naming what it expected and what it found.
    try:
        contained = env.action_space.contains(action)
    except ValueError:
        contained = False
    assert not contained
    with pytest.raises(error, match=f"the keep-mask must be an array of {M_EXPECTED}, .*{found}"):
        env.step(action)
    # The env still works after the error.
    _, _, _, _, info = env.step(np.ones(20, dtype=bool))
    assert info["iteration"] == 1


def test_render_mode_is_a_warning_and_none_as_in_gymnasium() -> None:
    # gymnasium.make warns of a mode that metadata["render_modes"] does not list and
    # passes it on; the env warns too and renders nothing (render_mode None).
    with pytest.warns(UserWarning, match="l2t envs do not render: render_mode='rgb_array'"):
        env = gymnasium.make("l2t/Synthetic-v0", render_mode="rgb_array", teaching=SHORT)
    assert env.render_mode is None and env.unwrapped.render_mode is None
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="does not render"):
        assert env.render() is None
    with pytest.warns(UserWarning, match="render_mode='human'"):
        direct = l2t.TeachingEnv("synthetic", teaching=SHORT, render_mode="human")
    assert direct.render_mode is None
    # Gymnasium's checker, rendering included.
    check_env(env.unwrapped)


def test_sb3_make_vec_env_asks_for_rgb_array_and_gets_an_env() -> None:
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_util import make_vec_env

    with pytest.warns(UserWarning, match="do not render"):
        venv = make_vec_env("l2t/Synthetic-v0", n_envs=2, env_kwargs={"teaching": SHORT})
    assert venv.render_mode is None and venv.num_envs == 2
    assert venv.reset().shape == (2, 20, 26)
    venv.close()


def test_flatten_gives_the_same_observations_as_vectors() -> None:
    flat = gymnasium.make("l2t/Synthetic-v0", flatten=True, teaching=SHORT)
    matrix = gymnasium.make("l2t/Synthetic-v0", teaching=SHORT)
    assert flat.observation_space.shape == (520,)
    assert np.array_equal(flat.observation_space.low, matrix.observation_space.low.reshape(-1))
    assert np.array_equal(flat.observation_space.high, matrix.observation_space.high.reshape(-1))
    got, _ = flat.reset(seed=2)
    want, info = matrix.reset(seed=2)
    assert got.shape == (520,) and got.dtype == np.float32 and np.array_equal(got, want.reshape(-1))
    # Column c of row r at r * F + c.
    margin = matrix.unwrapped.feature_names.index("margin")
    assert got[3 * 26 + margin] == want[3, margin]
    # The built-in teachers read either form.
    spl_flat, spl_matrix = l2t.Teacher({"kind": "spl"}, flat), l2t.Teacher({"kind": "spl"}, matrix)
    for _ in range(5):
        mask = spl_matrix.act(want, info)
        assert np.array_equal(spl_flat.act(got, info), mask)
        got, _, _, _, _ = flat.step(mask)
        want, _, _, _, info = matrix.step(mask)
        assert got in flat.observation_space
        assert np.array_equal(got, want.reshape(-1))
    check_env(flat.unwrapped)


def test_bad_preset_missing_data_and_ended_episodes() -> None:
    with pytest.raises(ValueError, match='unknown preset `nope`.*fashion-mnist-mlp'):
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
