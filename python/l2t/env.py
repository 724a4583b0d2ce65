"""The teaching environment as a :class:`gymnasium.Env`."""

from __future__ import annotations

import json
import os
import threading
from typing import Any, SupportsFloat

import gymnasium
import numpy as np
from gymnasium import spaces

from . import _l2t

__all__ = [
    "ResetNeeded",
    "TeachingEnv",
    "core_args",
    "keep_mask_space",
    "no_render_mode",
    "warn_no_render",
]


class ResetNeeded(gymnasium.error.ResetNeeded, RuntimeError):
    """``step`` was called before ``reset`` or after the episode ended."""


def core_args(
    data_dir: str | os.PathLike[str] | None, teaching: dict[str, Any] | None
) -> tuple[str | None, str | None]:
    """The data folder and the teaching overrides as the native core takes them."""
    if teaching is not None and not isinstance(teaching, dict):
        raise TypeError(
            f"teaching must be a dict of TeachingConfig fields, got {type(teaching).__name__}"
        )
    return (
        None if data_dir is None else os.fspath(data_dir),
        None if teaching is None else json.dumps(teaching),
    )


def keep_mask_space(m: int, multi_discrete: bool) -> spaces.MultiBinary | spaces.MultiDiscrete:
    """The action space of one env: keep-masks of ``m`` entries, as ``MultiBinary(m)``
    or, with ``multi_discrete``, ``MultiDiscrete([2] * m)`` (the same masks, for
    libraries that take no ``MultiBinary``)."""
    if multi_discrete:
        return spaces.MultiDiscrete(np.full(m, 2, dtype=np.int64))
    return spaces.MultiBinary(m)


def no_render_mode(render_mode: str | None, metadata: dict[str, Any]) -> None:
    """The ``render_mode`` of an l2t env, which renders nothing: always None.

    As ``gymnasium.make`` treats a mode that the env's ``metadata["render_modes"]``
    (empty here) does not list, a mode other than None is not an error but a warning,
    and the env is made without rendering: Gymnasium's passive checker expects
    ``render_mode`` None of an env with no render modes, and SB3's ``make_vec_env``
    passes ``render_mode="rgb_array"`` to every env it makes.
    """
    if render_mode is not None:
        gymnasium.logger.warn(
            f"l2t envs do not render: render_mode={render_mode!r} is not in the possible "
            f"render_modes ({metadata['render_modes']}), the env is made with render_mode=None"
        )


def warn_no_render(env_id: str) -> None:
    """What ``render()`` does in an env made without a render mode, as Gymnasium's own
    envs do: a warning, and no frame."""
    gymnasium.logger.warn(
        f"{env_id} does not render (its metadata['render_modes'] is empty): render() "
        "returns None"
    )


class TeachingEnv(gymnasium.Env[np.ndarray, np.ndarray]):
    """The data-teaching MDP of one preset (see the repository's README).

    Each step hands the teacher the feature matrix of an incoming mini-batch,
    ``float32`` of shape ``(M, F)`` (column names in :attr:`feature_names`; every row
    also holds the student state ``iteration``, ``average_training_loss``,
    ``best_dev_accuracy``), or with ``flatten=True`` the same matrix as one vector of
    ``M * F`` (row after row: column ``c`` of row ``r`` at index ``r * F + c``), which
    the default MLP policies of SB3, CleanRL or TorchRL read as it is. The action is a
    keep-mask, ``MultiBinary(M)``: any action that ``action_space.contains`` accepts,
    an array or list of 0 and 1 of dtype bool, an integer or a float dtype. The info
    dict holds the fields of the Rust ``TeachingInfo``; the ones without a value yet
    (``iterations_to_tau`` before tau is passed, ``dev_loss`` unless the reward
    measures it, ``average_training_loss`` before the first update) are left out.

    Args:
        preset: a preset name (``l2t.PRESETS``), as the ``l2t`` command takes it.
        split: ``"teacher"`` (the teacher half of the data, where teachers train, as
            the ``l2t`` command's training env) or ``"student"`` (the other half).
        data_dir: folder of the datasets (default: ``$L2T_DATA``, else the set-up's
            ``~/.cache/l2t/data``).
        teaching: overrides of the preset's ``TeachingConfig`` fields, e.g.
            ``{"max_iterations": 200, "tau": 0.5}``.
        seed: the master seed until ``reset(seed=...)`` gives another.
        threads: libtorch intra-op threads (default 1, as the ``l2t`` command; None
            leaves libtorch's setting; the setting is the process's).
        flatten: observations as vectors of ``M * F`` rather than ``(M, F)`` matrices
            (the same values, no copy; the bounds flattened alike).
        render_mode: the env renders nothing (``metadata["render_modes"]`` is empty);
            a mode other than None gives a warning and the env is made with
            ``render_mode=None``, as ``gymnasium.make`` treats an unlisted mode, so
            SB3's ``make_vec_env`` (which asks for ``"rgb_array"``) works.
        irreducible_loss: the column ``irreducible_loss`` after the labels (each
            instance's loss under a holdout student that never saw it, RHO-LOSS's
            signal): None (default) as the preset's run (``l2t.compare(preset)``,
            ``l2t reproduce``), which has it, so that the env has the run's columns and
            a policy trained here teaches there unchanged. The holdout students are
            trained once per task, as a run trains them, and cached in the set-up's
            cache (``$L2T_CACHE/irreducible``). False: the paper's 25 columns.
        multi_discrete: the action space as ``MultiDiscrete([2] * M)`` rather than
            ``MultiBinary(M)``: the same keep-masks (entry ``m`` is 1 to keep instance
            ``m``), for libraries whose models take no ``MultiBinary`` action, RLlib's
            catalog among them (with ``flatten=True``, whose vector observations it
            takes too). Either space's samples are actions of either env.

    The env belongs to the thread that made it (another thread gets a
    ``RuntimeError``); ``step`` and ``reset`` release the GIL while Rust works.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        preset: str = "synthetic",
        *,
        split: str = "teacher",
        data_dir: str | os.PathLike[str] | None = None,
        teaching: dict[str, Any] | None = None,
        seed: int | None = None,
        threads: int | None = 1,
        flatten: bool = False,
        render_mode: str | None = None,
        irreducible_loss: bool | None = None,
        multi_discrete: bool = False,
    ) -> None:
        no_render_mode(render_mode, self.metadata)
        self.render_mode = None
        folder, overrides = core_args(data_dir, teaching)
        self._core: _l2t.Core | None = _l2t.Core(
            preset, split, folder, overrides, seed, threads, irreducible_loss=irreducible_loss
        )
        # The student lives on this thread (it is not Send in Rust): other threads get a
        # RuntimeError here rather than PyO3's PanicException in the native core.
        self._thread = threading.get_ident()
        self.preset: str = preset
        self.feature_names: tuple[str, ...] = tuple(self._core.feature_names)
        self.batch_size: int = self._core.batch_size
        self.flatten: bool = bool(flatten)
        low, high = self._core.low, self._core.high
        if self.flatten:
            low, high = low.reshape(-1), high.reshape(-1)
        self.observation_space = spaces.Box(low=low, high=high, dtype=np.float32)
        self.action_space = keep_mask_space(self.batch_size, multi_discrete)

    @property
    def config(self) -> dict[str, Any]:
        """The teaching config in force (the Rust ``TeachingConfig``)."""
        return json.loads(self._live().config_json)

    def _live(self) -> _l2t.Core:
        if self._core is None:
            raise gymnasium.error.ClosedEnvironmentError("the env is closed")
        if threading.get_ident() != self._thread:
            raise RuntimeError(
                "an l2t.TeachingEnv is used from the thread that made it (its student is "
                "not thread-safe); make one per thread, or use l2t.TeachingVectorEnv"
            )
        return self._core

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode: a fresh student. ``seed`` re-seeds every stream of the
        env exactly as the Rust ``reset(Some(seed))``; None continues them."""
        if options:
            raise ValueError(f"reset takes no options, got {options!r}")
        super().reset(seed=seed)
        observation, info = self._live().reset(seed)
        if self.flatten:
            observation = observation.reshape(-1)
        return observation, info

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Applies the keep-mask ``action``: shape ``(M,)``, every entry 0 or 1, of
        dtype bool, an integer or a float dtype (SB3's policies give float32), or a
        list of them: whatever ``action_space.contains`` accepts. Raises
        ``ValueError`` for another shape or entry (0.5, 2, NaN) and ``TypeError`` for
        what is not an array of numbers (a string), each naming what was expected;
        :class:`ResetNeeded` after the episode ended."""
        try:
            observation, reward, terminated, truncated, info = self._live().step(action)
        except _l2t.ResetNeeded as error:
            raise ResetNeeded(str(error)) from None
        if self.flatten:
            observation = observation.reshape(-1)
        return observation, reward, terminated, truncated, info

    def render(self) -> None:
        """Renders nothing (the env has no render modes): warns and returns None, as
        Gymnasium's envs do when made without a render mode."""
        warn_no_render(self.spec.id if self.spec is not None else type(self).__name__)

    def dev_accuracy(self) -> float:
        """Accuracy of the current student on the dev split."""
        return self._live().dev_accuracy()

    def close(self) -> None:
        """Frees the student and the data; the env cannot be used after."""
        self._core = None
