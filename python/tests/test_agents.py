"""Two Python agents drive the env: a plain loop and a short REINFORCE in numpy."""

from __future__ import annotations

import numpy as np
from conftest import SHORT

import l2t


def test_plain_python_loop_with_a_hand_written_teacher() -> None:
    env = l2t.TeachingEnv("synthetic", teaching=SHORT)
    loss = env.feature_names.index("loss")
    obs, info = env.reset(seed=0)
    steps, total = 0, 0.0
    while True:
        # Keep the 15 lowest-loss instances of every batch.
        mask = np.zeros(env.batch_size, dtype=bool)
        mask[np.argsort(obs[:, loss])[:15]] = True
        obs, reward, terminated, truncated, info = env.step(mask)
        steps, total = steps + 1, total + reward
        if terminated or truncated:
            break
    assert info["iteration"] == 30 and terminated
    assert info["instances_kept"] == 15 * steps
    assert 0.0 < total < 1.0


class NumpyReinforce:
    """A linear Bernoulli policy over the feature columns, trained by REINFORCE."""

    def __init__(self, num_features: int, seed: int, learning_rate: float = 0.5) -> None:
        self.rng = np.random.default_rng(seed)
        self.w = np.zeros(num_features)
        self.b = 2.0  # keep most instances at the start
        self.learning_rate = learning_rate
        self.baseline: float | None = None

    def probabilities(self, obs: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(obs.astype(np.float64) @ self.w + self.b)))

    def episode(self, env: l2t.TeachingEnv, seed: int) -> float:
        obs, _ = env.reset(seed=seed)
        grads_w, grads_b, total = np.zeros_like(self.w), 0.0, 0.0
        while True:
            p = self.probabilities(obs)
            mask = self.rng.random(p.shape) < p
            grads_w += (mask - p) @ obs
            grads_b += float(np.sum(mask - p))
            obs, reward, terminated, truncated, _ = env.step(mask)
            total += reward
            if terminated or truncated:
                break
        baseline = total if self.baseline is None else self.baseline
        advantage = total - baseline
        self.w += self.learning_rate * advantage * grads_w
        self.b += self.learning_rate * advantage * grads_b
        self.baseline = 0.8 * baseline + 0.2 * total
        return total


def test_numpy_reinforce_runs_and_updates_its_policy() -> None:
    env = l2t.TeachingEnv("synthetic", teaching=SHORT)
    agent = NumpyReinforce(len(env.feature_names), seed=0)
    returns = [agent.episode(env, seed=episode) for episode in range(6)]
    assert all(np.isfinite(returns)) and all(0.0 < r < 1.0 for r in returns)
    # The returns differ between episodes, so the policy moved off its start.
    assert np.any(agent.w != 0.0)
    # Compared with a built-in teacher on the same seed: both are valid episodes.
    no_teach = l2t.Teacher({"kind": "no_teach"}, env)
    obs, info = env.reset(seed=0)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(no_teach.act(obs, info))
        done = terminated or truncated
    assert info["iteration"] == 30
