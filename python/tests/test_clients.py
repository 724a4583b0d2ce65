"""The RL libraries people hand the env to: Stable-Baselines3 (PPO, A2C, its env
checker) and a CleanRL-style torch loop over ``gymnasium.make_vec``.

Short episodes (``SHORT``: 30 student iterations, about 60 steps under a random
policy), a few thousand steps each: a few seconds in all. They skip when torch or
stable-baselines3 is not installed (scripts/test.sh installs both unless
L2T_SKIP_TORCH=1).
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium
import numpy as np
import pytest
from conftest import SHORT

import l2t

torch = pytest.importorskip("torch")
sb3 = pytest.importorskip("stable_baselines3")

from stable_baselines3.common.env_checker import check_env  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor  # noqa: E402

from l2t.sb3 import SB3VecEnv  # noqa: E402

STEPS = 2048


def learn(algorithm: str, venv: VecEnv, steps: int = STEPS) -> Any:
    """Trains SB3's ``algorithm`` with its default MlpPolicy on ``venv``."""
    if algorithm == "PPO":
        model = sb3.PPO("MlpPolicy", venv, n_steps=256, batch_size=128, n_epochs=2, seed=0, device="cpu")
    else:
        model = sb3.A2C("MlpPolicy", venv, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(steps)
    assert model.num_timesteps >= steps
    # The policy was updated, and whole episodes were played (SB3's Monitor saw them).
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))
    episodes = list(model.ep_info_buffer)
    assert len(episodes) >= steps // (2 * 200), episodes
    for episode in episodes:
        assert np.isfinite(episode["r"]) and 0.0 < episode["r"] < 1.0 and episode["l"] >= 30
    return model


@pytest.mark.parametrize("algorithm", ["PPO", "A2C"])
def test_sb3_trains_through_make_vec_env(algorithm: str) -> None:
    # Unmodified SB3 usage: make_vec_env(id) asks for render_mode="rgb_array" (a warning:
    # the env does not render) and wraps each env in a Monitor and a DummyVecEnv.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render_mode")
        venv = make_vec_env(
            "l2t/Synthetic-v0", n_envs=2, seed=0, env_kwargs={"teaching": SHORT, "flatten": True}
        )
    assert isinstance(venv, DummyVecEnv) and venv.observation_space.shape == (520,)
    model = learn(algorithm, venv)
    # The trained policy acts: float32 0/1 keep-masks, which the env accepts.
    obs = venv.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (2, 20) and set(np.unique(action)) <= {0, 1}
    venv.step(action)
    venv.close()


@pytest.mark.parametrize("algorithm", ["PPO", "A2C"])
def test_sb3_trains_through_the_rust_vector_env(algorithm: str) -> None:
    venv = VecMonitor(
        SB3VecEnv(
            gymnasium.make_vec(
                "l2t/Synthetic-v0", num_envs=2, vectorization_mode="vector_entry_point",
                teaching=SHORT, flatten=True,
            )
        )
    )
    learn(algorithm, venv)
    venv.close()


def test_sb3_vec_env_equals_dummy_vec_env() -> None:
    # Same seeds, same actions: the same observations, rewards, dones and infos as SB3's
    # DummyVecEnv over the single envs, through the same-step resets.
    ours = SB3VecEnv(l2t.TeachingVectorEnv("synthetic", 2, teaching=SHORT, flatten=True))
    reference = DummyVecEnv(
        [lambda: l2t.TeachingEnv("synthetic", teaching=SHORT, flatten=True) for _ in range(2)]
    )
    assert ours.observation_space == reference.observation_space
    assert ours.action_space == reference.action_space
    assert ours.get_attr("batch_size") == [20, 20] and ours.render_mode is None
    with pytest.raises(AttributeError, match="live in Rust"):
        ours.env_method("dev_accuracy")
    ours.seed(3)
    reference.seed(3)
    assert np.array_equal(ours.reset(), reference.reset())
    assert ours.reset_infos == reference.reset_infos
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(150):
        actions = (rng.random((2, 20)) < 0.7).astype(np.float32)
        got, want = ours.step(actions), reference.step(actions)
        assert np.array_equal(got[0], want[0])
        assert np.array_equal(got[1], want[1]) and got[1].dtype == want[1].dtype
        assert np.array_equal(got[2], want[2])
        for mine, theirs in zip(got[3], want[3]):
            assert mine.keys() == theirs.keys()
            for key, value in mine.items():
                assert np.array_equal(value, theirs[key]), key
        assert ours.reset_infos == reference.reset_infos
        ended += int(got[2].sum())
    assert ended >= 2
    ours.close()
    reference.close()


def test_sb3_check_env_passes_with_flat_observations() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(gymnasium.make("l2t/Synthetic-v0", teaching=SHORT, flatten=True).unwrapped)
    assert [str(w.message) for w in caught] == []
    # The (M, F) matrix is what SB3 warns of, and what flatten=True addresses.
    with pytest.warns(UserWarning, match="unconventional shape"):
        check_env(l2t.TeachingEnv("synthetic", teaching=SHORT))


class BernoulliPolicy(torch.nn.Module):
    """Keep probabilities of the M instances from the flat observation."""

    def __init__(self, observation_size: int, batch_size: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(observation_size, 32), torch.nn.Tanh(), torch.nn.Linear(32, batch_size)
        )
        torch.nn.init.constant_(self.net[2].bias, 2.0)  # keep most instances at first

    def forward(self, obs: torch.Tensor) -> torch.distributions.Bernoulli:
        return torch.distributions.Bernoulli(logits=self.net(obs))


def test_cleanrl_style_policy_gradient_over_make_vec() -> None:
    torch.manual_seed(0)
    envs = gymnasium.make_vec(
        "l2t/Synthetic-v0", num_envs=2, vectorization_mode="vector_entry_point",
        teaching=SHORT, flatten=True,
    )
    policy = BernoulliPolicy(envs.single_observation_space.shape[0], envs.single_action_space.n)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in policy.parameters()]
    obs, _ = envs.reset(seed=0)
    next_obs = torch.as_tensor(obs)
    returns: list[float] = []
    episode_return = np.zeros(envs.num_envs)
    for _update in range(6):
        log_probs, rewards, dones = [], [], []
        for _step in range(32):
            dist = policy(next_obs)
            action = dist.sample()  # float32 0/1, handed to the env as it is
            log_probs.append(dist.log_prob(action).sum(-1))
            obs, reward, terminated, truncated, _ = envs.step(action.numpy())
            done = np.logical_or(terminated, truncated)
            episode_return += reward
            returns.extend(episode_return[done])
            episode_return[done] = 0.0
            rewards.append(torch.as_tensor(reward, dtype=torch.float32))
            dones.append(torch.as_tensor(done, dtype=torch.float32))
            next_obs = torch.as_tensor(obs)
        # Reward-to-go within each episode (same-step resets: a done cuts the sum).
        to_go, running = [], torch.zeros(envs.num_envs)
        for reward, done in zip(reversed(rewards), reversed(dones)):
            running = reward + running * (1.0 - done)
            to_go.append(running)
        to_go = torch.stack(to_go[::-1])
        advantage = (to_go - to_go.mean()) / (to_go.std() + 1e-8)
        loss = -(torch.stack(log_probs) * advantage).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    assert len(returns) >= 2 and all(0.0 < r < 1.0 for r in returns), returns
    envs.close()
