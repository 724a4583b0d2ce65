"""The built-in teachers of the Rust library, callable from Python."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np

from . import _l2t

__all__ = ["Teacher"]


class Teacher:
    """A built-in teacher (``l2t.TEACHER_KINDS``) for an env's feature layout.

    ``config`` is the ``TeacherConfig`` of the ``l2t`` command, as a dict or JSON, e.g.
    ``{"kind": "spl"}``, ``{"kind": "online_batch"}``, ``{"kind": "rand_teach",
    "drop_ratio": 0.2, "seed": 1}`` or ``{"kind": "checkpoint", "path": "..."}``;
    ``env`` is an l2t env (wrapped or not) or its list of feature names.

    ``act(obs, info)`` gives the keep-mask (int8 0/1, shape (M,)) for an observation
    and the info returned with it; ``observe(reward, done)`` hands a teacher each step's
    reward. A learned teacher (for example one read from a checkpoint) teaches with
    its policy and does not change while it teaches: the library trains teachers with
    the ``l2t`` command (or ``l2t_agents::train_parallel`` in Rust).
    """

    def __init__(
        self, config: dict[str, Any] | str, env: gymnasium.Env[Any, Any] | Sequence[str]
    ) -> None:
        text = config if isinstance(config, str) else json.dumps(config)
        if isinstance(env, gymnasium.Env):
            names = getattr(env.unwrapped, "feature_names", None)
            if names is None:
                raise TypeError(f"{env!r} is not an l2t env: it has no feature_names")
        else:
            names = env
        names = list(names)
        self._num_features = len(names)
        self._core = _l2t.TeacherCore(text, names)

    @property
    def name(self) -> str:
        """The teacher's name, as in the ``l2t`` command's tables."""
        return self._core.name

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The keep-mask for ``observation`` (float32, (M, F), or the ``M * F`` vector
        of an env made with ``flatten=True``) and its ``info``."""
        if isinstance(observation, np.ndarray) and observation.ndim == 1:
            observation = observation.reshape(-1, self._num_features)
        return self._core.act(observation, info)

    def observe(self, reward: float, done: bool) -> None:
        """Records the reward of the last action."""
        self._core.observe(float(reward), bool(done))

    def __repr__(self) -> str:
        return f"Teacher({self.name})"
