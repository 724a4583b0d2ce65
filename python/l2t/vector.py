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
from .env import ResetNeeded, core_args, keep_mask_space, no_render_mode, warn_no_render

__all__ = ["TeachingVectorEnv", "autoreset_mode_arg"]


def autoreset_mode_arg(mode: str | AutoresetMode) -> AutoresetMode:
    """The :class:`AutoresetMode` of ``mode``: the mode itself or its value
    (``"NextStep"``, ``"SameStep"``, ``"Disabled"``), as Gymnasium's vector envs take it;
    anything else is a ``ValueError`` naming the three."""
    if isinstance(mode, AutoresetMode):
        return mode
    try:
        return AutoresetMode(mode)
    except ValueError:
        raise ValueError(
            f"autoreset_mode must be a gymnasium.vector.AutoresetMode or one of "
            f"{[m.value for m in AutoresetMode]}, got {mode!r}"
        ) from None


def reset_mask_arg(mask: Any, num_envs: int) -> np.ndarray | None:
    """``options["reset_mask"]`` checked as Gymnasium's ``SyncVectorEnv`` checks it
    (same exceptions and messages): None, or a bool array of shape ``(num_envs,)`` with
    at least one True."""
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"`options['reset_mask']` must be a numpy array, got {type(mask)}")
    if mask.shape != (num_envs,):
        raise ValueError(
            f"`options['reset_mask']` must have shape `({num_envs},)`, got {mask.shape}"
        )
    if mask.dtype != np.bool_:
        raise TypeError(f"`options['reset_mask']` must have `dtype=np.bool_`, got {mask.dtype}")
    if not np.any(mask):
        raise ValueError(
            "`options['reset_mask']` must contain a boolean array with at least one True "
            f"value, got reset_mask={mask}"
        )
    return mask


def seeds_arg(seed: int | Sequence[int | None] | None, num_envs: int) -> list[int | None]:
    """One seed per env, as Gymnasium's ``SyncVectorEnv`` reads ``seed``: None (every
    env continues its streams), an int ``s`` (env ``i`` gets ``s + i``) or a list of
    ``num_envs`` ints or None."""
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(num_envs)]
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(
            f"If seeds are passed as a list the length must match num_envs={num_envs} but "
            f"got length={len(seeds)}."
        )
    return seeds


class TeachingVectorEnv(VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``num_envs`` teaching envs of one preset, stepped on Rust worker threads with
    the GIL released.

    Env ``i`` is seeded with ``seed + i``. What happens to an env whose episode ends is
    ``autoreset_mode``, one of Gymnasium 1.x's three :class:`AutoresetMode` (the
    attribute :attr:`autoreset_mode` and ``metadata["autoreset_mode"]`` say which), all
    three run in Rust, and each gives step for step the results of Gymnasium's
    ``SyncVectorEnv(..., autoreset_mode=mode)`` of :class:`l2t.TeachingEnv` with the
    same seeds and actions, for any ``num_workers``:

    - ``SAME_STEP`` (default): the env is reset in the step that ended its episode: the
      returned observation is the first of its next episode, ``infos["final_obs"][i]``
      and ``infos["final_info"]`` hold the last one, with the masks
      ``infos["_final_obs"]`` and ``infos["_final_info"]``.
    - ``NEXT_STEP`` (the default of Gymnasium's ``SyncVectorEnv``): the step that ends
      the episode returns its last observation; the next step ignores the env's action
      and resets it, returning the first observation of its next episode, reward 0,
      not terminated, not truncated, and the reset's info.
    - ``DISABLED``: nothing is reset; reset the ended envs with
      ``reset(options={"reset_mask": mask})`` before the next step (a step while an
      env's episode has ended raises :class:`l2t.ResetNeeded` naming the env, before any
      env steps; Gymnasium's ``SyncVectorEnv`` fails an assertion there).

    ``reset(options={"reset_mask": mask})`` (a bool array of shape ``(num_envs,)``)
    resets only the masked envs, in every mode, as ``SyncVectorEnv`` does.

    Episode length: a step is one incoming mini-batch that the teacher filters, and the
    student trains once on every ``batch_size`` kept instances, so an episode of
    ``max_iterations`` student iterations takes at least ``max_iterations`` steps, more
    when the teacher drops instances. Gymnasium's ``RecordEpisodeStatistics`` (and
    SB3's ``Monitor``) count steps, so their episode lengths are batches seen; the
    iterations that define the reward are ``infos["iteration"]``.

    Arguments as :class:`l2t.TeachingEnv` (``flatten=True``: observations of shape
    ``(num_envs, M * F)``, ``final_obs`` alike; a ``render_mode`` other than None is a
    warning, the env renders nothing; ``multi_discrete=True``: each env's actions as
    ``MultiDiscrete([2] * M)``), plus ``num_envs``, ``num_workers`` (threads;
    default one per core, at most ``num_envs``) and ``autoreset_mode`` (an
    :class:`AutoresetMode` or its value, ``"NextStep"``, ``"SameStep"``,
    ``"Disabled"``). Actions: shape ``(num_envs, M)``, any that
    ``action_space.contains`` accepts (0 and 1 as bool, integers or floats).
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
        multi_discrete: bool = False,
        autoreset_mode: str | AutoresetMode = AutoresetMode.SAME_STEP,
    ) -> None:
        no_render_mode(render_mode, self.metadata)
        self.render_mode = None
        mode = autoreset_mode_arg(autoreset_mode)
        folder, overrides = core_args(data_dir, teaching)
        self._core: _l2t.VectorCore | None = _l2t.VectorCore(
            preset, num_envs, split, folder, overrides, seed, threads, num_workers,
            irreducible_loss=irreducible_loss, autoreset_mode=mode.value,
        )
        self.autoreset_mode: AutoresetMode = mode
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.preset: str = preset
        self.num_envs = num_envs
        self.feature_names: tuple[str, ...] = tuple(self._core.feature_names)
        self.batch_size: int = self._core.batch_size
        self.flatten: bool = bool(flatten)
        low, high = self._core.low, self._core.high
        if self.flatten:
            low, high = low.reshape(-1), high.reshape(-1)
        self.single_observation_space = spaces.Box(low=low, high=high, dtype=np.float32)
        self.single_action_space = keep_mask_space(self.batch_size, multi_discrete)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        # The observations last returned: a masked reset returns them for the envs it
        # leaves, as SyncVectorEnv does (zeros before the first reset, as there).
        self._observations: np.ndarray = np.zeros(
            self.observation_space.shape, dtype=np.float32
        )

    def _live(self) -> _l2t.VectorCore:
        if self._core is None:
            from gymnasium.error import ClosedEnvironmentError

            raise ClosedEnvironmentError("the vector env is closed")
        return self._core

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode in every env, or with ``options={"reset_mask": mask}``
        only in the envs where ``mask`` (a bool numpy array of shape ``(num_envs,)``
        with at least one True) is True; the others keep their episode and the
        observation last returned, and have no info entries (their ``_key`` masks are
        False). ``seed``: an int (env ``i`` gets ``seed + i``), a list of ``num_envs``
        ints or None (env ``i`` gets entry ``i``), or None; a None seed continues the
        env's streams. The envs take no other option (``ValueError``)."""
        options = dict(options) if options else {}
        mask = reset_mask_arg(options.pop("reset_mask", None), self.num_envs)
        if options:
            raise ValueError(
                f"reset takes no options but reset_mask, got {sorted(options)!r}"
            )
        seeds = seeds_arg(seed, self.num_envs)
        if isinstance(seed, (int, np.integer)):
            super().reset(seed=int(seed))
        observations, env_infos = self._live().reset_some(
            seeds, [True] * self.num_envs if mask is None else mask.tolist()
        )
        if self.flatten:
            observations = observations.reshape(len(env_infos), -1)
        if mask is not None:
            observations, some = self._observations.copy(), observations
            observations[mask] = some
        self._observations = observations
        infos: dict[str, Any] = {}
        indices = range(self.num_envs) if mask is None else np.flatnonzero(mask)
        for i, info in zip(indices, env_infos):
            infos = self._add_info(infos, info, int(i))
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
        self._observations = observations
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
