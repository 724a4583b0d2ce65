"""The Rust vector env as a Stable-Baselines3 ``VecEnv`` (needs ``stable-baselines3``).

SB3 steps its own ``VecEnv`` type, not a :class:`gymnasium.vector.VectorEnv`. Its
``make_vec_env("l2t/Synthetic-v0", n_envs)`` works as it is (a ``DummyVecEnv`` of
single envs, stepped one after the other); :class:`SB3VecEnv` hands SB3 the package's
:class:`l2t.TeachingVectorEnv` instead, whose envs step at once on Rust worker threads
without the GIL, which saves time where the envs' steps, not the policy, take most of it::

    import l2t
    from l2t.sb3 import SB3VecEnv
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    venv = VecMonitor(SB3VecEnv(l2t.TeachingVectorEnv("synthetic", 2, flatten=True)))
    PPO("MlpPolicy", venv).learn(10_000)

Wrap it in SB3's ``VecMonitor`` for the episode returns and lengths of SB3's logs (SB3
wraps only single envs in a ``Monitor`` itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from . import _l2t
from .env import ResetNeeded
from .vector import TeachingVectorEnv

__all__ = ["SB3VecEnv"]

# Attributes that every env of a TeachingVectorEnv shares, as get_attr returns them.
_SHARED = ("render_mode", "preset", "feature_names", "batch_size", "flatten", "metadata")


class SB3VecEnv(VecEnv):
    """An :class:`l2t.TeachingVectorEnv` as SB3's ``VecEnv``, stepped by its Rust core.

    SB3's conventions: ``reset()`` returns the observations alone (the infos go to
    ``reset_infos``); ``step`` returns ``(obs, rewards, dones, infos)`` with ``dones``
    = terminated or truncated and a list of one info dict per env; an env whose
    episode ended is reset in the same step, its info is the last step's with
    ``"terminal_observation"`` and ``"TimeLimit.truncated"`` (truncated and not
    terminated), its reset info goes to ``reset_infos``, as SB3's ``DummyVecEnv``
    does. ``seed(s)`` (which SB3's algorithms call) gives env ``i`` the seed ``s + i``
    at the next reset, exactly the seeds of ``TeachingVectorEnv.reset(seed=s)``.

    Args:
        env: the vector env, unwrapped (``l2t.TeachingVectorEnv(...)`` or
            ``gymnasium.make_vec(id, n, vectorization_mode="vector_entry_point")``):
            its Rust core is stepped directly, so Gymnasium vector wrappers around it
            would be bypassed and are refused.

    ``get_attr`` gives the attributes the envs share (``render_mode``, ``preset``,
    ``feature_names``, ``batch_size``, ``flatten``, ``metadata``, and the single env's
    ``observation_space`` and ``action_space``); the envs live in Rust, so
    ``set_attr`` and ``env_method`` raise ``AttributeError``.
    """

    def __init__(self, env: TeachingVectorEnv) -> None:
        if not isinstance(env, TeachingVectorEnv):
            raise TypeError(
                "SB3VecEnv takes an unwrapped l2t.TeachingVectorEnv (its Rust core is "
                f"stepped directly, wrappers would be bypassed), got {type(env).__name__}"
            )
        if env.autoreset_mode is not AutoresetMode.SAME_STEP:
            raise ValueError(
                "SB3VecEnv takes a TeachingVectorEnv with autoreset_mode SAME_STEP (SB3's "
                "VecEnv resets an ended env in the same step and reports the last "
                f"observation as terminal_observation), got {env.autoreset_mode}"
            )
        self.env = env
        self._actions: np.ndarray | None = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    def _core(self) -> _l2t.VectorCore:
        return self.env._live()

    def _observations(self, observations: np.ndarray) -> np.ndarray:
        return observations.reshape(self.num_envs, -1) if self.env.flatten else observations

    def reset(self) -> VecEnvObs:
        """Starts an episode in every env, with the seeds of the last ``seed()`` call
        (then forgotten, as SB3's ``DummyVecEnv`` does) or continuing their streams."""
        if any(self._options):
            raise ValueError(f"l2t envs take no reset options, got {self._options!r}")
        first = self._seeds[0]
        if first is None:
            if any(s is not None for s in self._seeds):
                raise ValueError(f"seeds must be all None or [s, s + 1, ...], got {self._seeds!r}")
            seed = None
        else:
            if any(s != first + i for i, s in enumerate(self._seeds)):
                raise ValueError(
                    f"env i is seeded with seed + i: the seeds must be [s, s + 1, ...], "
                    f"got {self._seeds!r}"
                )
            seed = int(first)
        observations, infos = self._core().reset(seed)
        self.reset_infos = list(infos)
        self._reset_seeds()
        self._reset_options()
        return self._observations(observations)

    def step_async(self, actions: np.ndarray) -> None:
        """Records the keep-masks of every env, shape ``(num_envs, M)`` (SB3's
        policies give float32 0.0/1.0)."""
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Steps every env at once in Rust; see the class for what comes back."""
        if self._actions is None:
            raise RuntimeError("step_wait was called without step_async")
        actions, self._actions = self._actions, None
        try:
            (
                observations,
                rewards,
                terminated,
                truncated,
                env_infos,
                final_observations,
                final_infos,
            ) = self._core().step(actions)
        except _l2t.ResetNeeded as error:
            raise ResetNeeded(str(error)) from None
        infos: list[dict[str, Any]] = []
        for i, info in enumerate(env_infos):
            final_info = final_infos[i]
            if final_info is None:
                info["TimeLimit.truncated"] = False
                infos.append(info)
            else:
                final_info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                final_obs = final_observations[i]
                final_info["terminal_observation"] = (
                    final_obs.reshape(-1) if self.env.flatten else final_obs
                )
                infos.append(final_info)
                self.reset_infos[i] = info
        return (
            self._observations(observations),
            rewards.astype(np.float32),
            terminated | truncated,
            infos,
        )

    def close(self) -> None:
        """Stops the Rust worker threads."""
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """A shared attribute of the envs (see the class), once per index."""
        if attr_name in ("observation_space", "action_space"):
            value = getattr(self.env, "single_" + attr_name)
        elif attr_name in _SHARED:
            value = getattr(self.env, attr_name)
        else:
            raise AttributeError(
                f"SB3VecEnv has no env attribute {attr_name!r}: its envs live in Rust and "
                f"share only {', '.join(_SHARED + ('observation_space', 'action_space'))}"
            )
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Refused: the envs live in Rust."""
        raise AttributeError(
            f"cannot set {attr_name!r} on the envs of an SB3VecEnv: they live in Rust; "
            "make a new l2t.TeachingVectorEnv with other arguments"
        )

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Refused: the envs live in Rust and have no Python methods."""
        raise AttributeError(
            f"cannot call {method_name!r} on the envs of an SB3VecEnv: they live in Rust; "
            "use stable_baselines3's make_vec_env for envs with Python methods"
        )

    def env_is_wrapped(
        self, wrapper_class: type[gymnasium.Wrapper[Any, Any, Any, Any]], indices: VecEnvIndices = None
    ) -> list[bool]:
        """False for every env: no Gymnasium wrapper is around them."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """No frames: the envs do not render."""
        return [None for _ in range(self.num_envs)]
