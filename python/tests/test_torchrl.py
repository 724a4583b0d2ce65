"""TorchRL takes the envs as they are: ``GymWrapper`` / ``GymEnv`` of the single env
and ``GymWrapper`` of the vector env (native, and Gymnasium's own in the modes TorchRL
accepts), each through TorchRL's ``check_env_specs`` and a few hundred steps of a
``Collector`` (TorchRL 0.14's name of ``SyncDataCollector``) under a random policy. Unmodified TorchRL usage; the tests skip
when torchrl is not installed (scripts/test.sh installs python/torchrl-requirements.txt
next to torch unless L2T_SKIP_TORCH=1)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
from conftest import SHORT
from gymnasium.vector import AutoresetMode

import l2t

torch = pytest.importorskip("torch")
torchrl = pytest.importorskip("torchrl")

from torchrl.collectors import Collector  # noqa: E402  (0.14's name of SyncDataCollector)
from torchrl.envs import EnvBase  # noqa: E402
from torchrl.envs.libs.gym import GymEnv, GymWrapper  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402

ID = "l2t/Synthetic-v0"
FRAMES = 300
ITERATION = l2t.TeachingEnv("synthetic").feature_names.index("iteration")


def collect(env: EnvBase, batch: int) -> int:
    """A few hundred steps of TorchRL's collector with its random policy; returns the
    episodes that ended. Checks what comes back: keep-masks of 0/1, the env's rewards,
    and the observations in the env's bounds."""
    collector = Collector(env, None, frames_per_batch=batch, total_frames=FRAMES)
    frames = episodes = 0
    for data in collector:
        frames += data.numel()
        action = data["action"]
        assert torch.all((action == 0) | (action == 1))
        reward = data["next", "reward"]
        assert torch.all(torch.isfinite(reward)) and torch.all(reward >= 0)
        # In the bounds of one env's observation space (the spec's leading dims are the
        # vector env's).
        space = env.observation_spec["observation"].space
        per_env = len(env.batch_size)
        low = space.low.reshape(-1, *space.low.shape[per_env:])[0]
        high = space.high.reshape(-1, *space.high.shape[per_env:])[0]
        observation = data["next", "observation"]
        assert torch.all((observation >= low) & (observation <= high))
        # The observation after an episode's last step is its last one (the student at
        # max_iterations: the iteration column i / T' is 1), not the next episode's
        # first, whether the vector env reset it in the same step (SAME_STEP, TorchRL
        # reads final_obs) or TorchRL reset it (DISABLED).
        done = data["next", "done"].squeeze(-1)
        last = data["next", "observation"][done].reshape(-1, 20, 26)
        assert torch.all(last[:, :, ITERATION] == 1.0)
        first = data["observation"][done].reshape(-1, 20, 26)
        assert torch.all(first[:, :, ITERATION] < 1.0)
        episodes += int(done.sum())
    collector.shutdown()
    assert frames >= FRAMES
    return episodes


def single(**kwargs: Any) -> gymnasium.Env:
    return gymnasium.make(ID, teaching=SHORT, **kwargs)


@pytest.mark.parametrize("flatten", [False, True])
def test_gym_wrapper_of_the_single_env(flatten: bool) -> None:
    env = GymWrapper(single(flatten=flatten))
    shape = (20 * 26,) if flatten else (20, 26)
    assert env.observation_spec["observation"].shape == shape
    assert env.action_spec.shape == (20,)
    check_env_specs(env, seed=0)
    env.set_seed(0)
    # About 60 steps an episode under a random policy: several episodes end.
    assert collect(env, 100) >= 3
    env.close()


def test_gym_env_by_id() -> None:
    env = GymEnv(ID, teaching=SHORT, flatten=True)
    check_env_specs(env, seed=0)
    rollout = env.rollout(100, break_when_any_done=False)
    assert rollout["next", "done"].any()
    env.close()


VECTOR_ENVS: dict[str, Callable[[AutoresetMode], gymnasium.vector.VectorEnv]] = {
    "native": lambda mode: l2t.TeachingVectorEnv("synthetic", 2, teaching=SHORT, autoreset_mode=mode),
    "make_vec": lambda mode: gymnasium.make_vec(ID, num_envs=2, teaching=SHORT, autoreset_mode=mode),
    "sync": lambda mode: gymnasium.make_vec(
        ID, num_envs=2, vectorization_mode="sync", teaching=SHORT, vector_kwargs={"autoreset_mode": mode}
    ),
}


# TorchRL accepts the two modes whose step returns the last observation of an ended
# episode: DISABLED, its preferred (it resets the ended envs with reset_mask), and
# SAME_STEP (it reads final_obs). In SAME_STEP its info reader makes a tensor spec of
# every info key and fails on the env's list-valued and nested fields
# (threshold_iterations, incoming_indices: "AttributeError: 'LinkedList' object has no
# attribute 'dtype'"; with those as arrays, the nested compute dict fails
# check_env_specs). A known limitation, strict so that it shows when either side changes.
SAME_STEP_INFOS = pytest.mark.xfail(
    raises=AttributeError, strict=True,
    reason="TorchRL's SAME_STEP info reader takes no list-valued or nested info fields",
)


@pytest.mark.parametrize(
    "mode",
    [AutoresetMode.DISABLED, pytest.param(AutoresetMode.SAME_STEP, marks=SAME_STEP_INFOS)],
    ids=lambda m: m.value,
)
@pytest.mark.parametrize("kind", list(VECTOR_ENVS))
def test_gym_wrapper_of_the_vector_env(kind: str, mode: AutoresetMode) -> None:
    env = GymWrapper(VECTOR_ENVS[kind](mode))
    assert env.batch_size == torch.Size([2])
    check_env_specs(env, seed=0)
    env.set_seed(0)
    assert collect(env, 100) >= 4
    env.close()


def test_the_vector_env_in_next_step_mode_is_refused_by_torchrl() -> None:
    # TorchRL's own rule (NEXT_STEP loses the step boundary it needs), stated by it.
    with pytest.raises(RuntimeError, match="SAME_STEP or DISABLED"):
        GymWrapper(VECTOR_ENVS["native"](AutoresetMode.NEXT_STEP))


def test_disabled_mode_rollout_resets_only_the_ended_envs() -> None:
    """TorchRL resets the ended envs of a DISABLED vector env with reset_mask: the
    other env's episode goes on (its iteration count keeps growing)."""
    env = GymWrapper(VECTOR_ENVS["native"](AutoresetMode.DISABLED))
    env.set_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rollout = env.rollout(150, break_when_any_done=False)
    done = rollout["next", "done"].squeeze(-1).numpy()  # (envs, steps)
    assert done.shape == (2, 150) and done.any(axis=1).all(), "every env ended an episode"
    # The envs end at different steps (different seeds and actions), so a masked reset
    # of one env happened while the other ran on: its iteration count went on growing.
    first = [int(np.flatnonzero(done[i])[0]) for i in range(2)]
    assert first[0] != first[1], first
    env.close()


def test_the_env_steps_under_torch_no_grad(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TorchRL's collectors step envs under ``torch.no_grad()``, whose grad mode is the
    thread's libtorch state that l2t shares with torch: the student's training (and the
    holdout students of the irreducible_loss column, trained here in an empty cache)
    must not depend on it."""
    monkeypatch.setenv("L2T_CACHE", str(tmp_path))
    with torch.no_grad():
        env = l2t.TeachingEnv("synthetic", teaching={**SHORT, "eval_every": 1})
        env.reset(seed=0)
        for _ in range(3):
            _, _, _, _, info = env.step(np.ones(20, dtype=bool))
        assert info["iteration"] == 3
        assert not torch.is_grad_enabled()
    assert list((tmp_path / "irreducible").iterdir()), "the holdout losses were computed"
    env.close()
