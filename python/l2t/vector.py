"""The Rust ``ThreadedVectorEnv`` as a :class:`gymnasium.vector.VectorEnv`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from . import _l2t
from .env import ResetNeeded, core_args, no_render_mode, warn_no_render

__all__ = ["TeachingVectorEnv"]


class TeachingVectorEnv(VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``num_envs`` teaching envs of one preset, stepped on Rust worker threads with
    the GIL released.

    Env ``i`` is seeded with ``seed + i``. An env whose episode ends is reset in the
    same step (:attr:`AutoresetMode.SAME_STEP`): the returned observation is the first
    of its next episode, and ``infos["final_obs"][i]`` / ``infos["final_info"]`` hold
    the last one, with the masks ``infos["_final_obs"]``, as Gymnasium's
    ``SyncVectorEnv`` in that mode. The results are those of a ``SyncVectorEnv`` of
    :class:`l2t.TeachingEnv` with the same seeds, for any ``num_workers``.

    Arguments as :class:`l2t.TeachingEnv` (``flatten=True``: observations of shape
    ``(num_envs, M * F)``, ``final_obs`` alike; a ``render_mode`` other than None is a
    warning, the env renders nothing), plus ``num_envs`` and ``num_workers`` (threads;
    default one per core, at most ``num_envs``). Actions: shape ``(num_envs, M)``, any
    that ``action_space.contains`` accepts (0 and 1 as bool, integers or floats).
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        preset: str = "synthetic",
        num_envs: int = 1,
        *,
        split: str = "teacher",
        data_dir: str | os.PathLike[str] | None = None,
        teaching: dict[str, Any] | None = None,
        seed: int | None = None,
        threads: int | None = 1,
        num_workers: int | None = None,
        flatten: bool = False,
        render_mode: str | None = None,
        irreducible_loss: bool | None = None,
    ) -> None:
        no_render_mode(render_mode, self.metadata)
        self.render_mode = None
        folder, overrides = core_args(data_dir, teaching)
        self._core: _l2t.VectorCore | None = _l2t.VectorCore(
            preset, num_envs, split, folder, overrides, seed, threads, num_workers,
            irreducible_loss=irreducible_loss,
        )
        self.preset: str = preset
        self.num_envs = num_envs
        self.feature_names: tuple[str, ...] = tuple(self._core.feature_names)
        self.batch_size: int = self._core.batch_size
        self.flatten: bool = bool(flatten)
        low, high = self._core.low, self._core.high
        if self.flatten:
            low, high = low.reshape(-1), high.reshape(-1)
        self.single_observation_space = spaces.Box(low=low, high=high, dtype=np.float32)
        self.single_action_space = spaces.MultiBinary(self.batch_size)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def _live(self) -> _l2t.VectorCore:
        if self._core is None:
            from gymnasium.error import ClosedEnvironmentError

            raise ClosedEnvironmentError("the vector env is closed")
        return self._core

    def reset(
        self,
        *,
        seed: int | Sequence[int] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode in every env; env ``i`` gets ``seed + i`` (a list of
        seeds must be exactly ``[s, s + 1, ...]``), None continues its streams."""
        if options:
            raise ValueError(f"reset takes no options, got {options!r}")
        if seed is not None and not isinstance(seed, (int, np.integer)):
            seeds = list(seed)
            if len(seeds) != self.num_envs or any(s != seeds[0] + i for i, s in enumerate(seeds)):
                raise ValueError(
                    f"seed must be an int (env i gets seed + i) or the list [s, s + 1, ...] of "
                    f"{self.num_envs} seeds, got {seeds!r}"
                )
            seed = int(seeds[0])
        super().reset(seed=seed)
        observations, env_infos = self._live().reset(seed)
        if self.flatten:
            observations = observations.reshape(self.num_envs, -1)
        infos: dict[str, Any] = {}
        for i, info in enumerate(env_infos):
            infos = self._add_info(infos, info, i)
        return observations, infos

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Applies ``actions``: shape ``(num_envs, M)``, every entry 0 or 1, of dtype
        bool, an integer or a float dtype, or a list of them (errors as
        :meth:`l2t.TeachingEnv.step`)."""
        try:
            (
                observations,
                rewards,
                terminated,
                truncated,
                env_infos,
                final_observations,
                final_infos,
            ) = self._live().step(actions)
        except _l2t.ResetNeeded as error:
            raise ResetNeeded(str(error)) from None
        if self.flatten:
            observations = observations.reshape(self.num_envs, -1)
        infos: dict[str, Any] = {}
        for i, info in enumerate(env_infos):
            final_info = final_infos[i]
            if final_info is not None:
                final_obs = final_observations[i]
                if self.flatten:
                    final_obs = final_obs.reshape(-1)
                infos = self._add_info(infos, {"final_obs": final_obs, "final_info": final_info}, i)
            infos = self._add_info(infos, info, i)
        return observations, rewards, terminated, truncated, infos

    def render(self) -> None:
        """Renders nothing (the envs have no render modes): warns and returns None."""
        warn_no_render(self.spec.id if self.spec is not None else type(self).__name__)

    def close_extras(self, **kwargs: Any) -> None:
        """Stops the worker threads."""
        self._core = None
