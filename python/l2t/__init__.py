"""Learning to Teach (Fan et al., ICLR 2018) as Gymnasium environments.

The environments, the vector env and the built-in teachers run in Rust (the native
module ``l2t._l2t``, built by maturin from the repository's ``python/`` crate); this
package wraps them as a :class:`gymnasium.Env`, a :class:`gymnasium.vector.VectorEnv`
and :class:`Teacher` objects, and registers one env id per preset::

    import gymnasium, l2t
    env = gymnasium.make("l2t/Synthetic-v0", seed=0)
    obs, info = env.reset(seed=0)          # obs: float32 (M, F) feature matrix
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

Actions are any keep-mask ``action_space.contains`` accepts (0/1 as bool, integers or
floats, or lists); ``flatten=True`` gives observations as vectors of ``M * F`` for the
default MLP policies of SB3, CleanRL or TorchRL; the envs do not render (a
``render_mode`` is a warning, the env is made with ``render_mode=None``), so SB3's
``make_vec_env("l2t/Synthetic-v0", n_envs=2)`` works. ``l2t.sb3.SB3VecEnv`` (imported
on its own, it needs stable-baselines3) hands SB3 the Rust vector env.

``l2t.compare(config, teachers={"mine": f})`` puts teachers written in Python (a
callable ``f(obs, info) -> mask`` or an object with ``act``) beside a run config's
built-in teachers, on the same seeds, and writes the ``l2t`` command's run folder
(``summary.md``, ``report.json``, ``events.jsonl``, the CSVs and figures);
``l2t.train(preset, "es")`` trains a built-in learned teacher and gives its checkpoint.

libtorch: the native module links the libtorch its build used (2.13.0 from
``scripts/setup.sh``) by RUNPATH and shares ``libtorch_cpu.so`` by soname with a
``torch`` imported in the same process, so that torch must be the same version.
"""

from __future__ import annotations

import sys

__all__ = [
    "PRESETS",
    "ENV_IDS",
    "TEACHER_KINDS",
    "ResetNeeded",
    "Run",
    "Teacher",
    "TeachingEnv",
    "TeachingVectorEnv",
    "compare",
    "env_id",
    "libtorch_version",
    "train",
]


def _torch_hint() -> str:
    return (
        "l2t's native module links libtorch 2.13.0 (the set-up's) and shares "
        "libtorch_cpu.so with torch in one process, so torch must be 2.13.0 too: "
        "`pip install torch==2.13.0`, or rebuild l2t against your torch's libtorch "
        "(export LIBTORCH=<torch>/... and run `bash scripts/setup.sh`)"
    )


try:
    from . import _l2t
except ImportError as error:  # pragma: no cover - depends on the process
    _torch = sys.modules.get("torch")
    if _torch is not None:
        raise ImportError(
            f"cannot load l2t's native module next to torch "
            f"{getattr(_torch, '__version__', '?')}: {error}. {_torch_hint()}"
        ) from error
    raise ImportError(
        f"cannot load l2t's native module: {error}. Build it with "
        "`bash scripts/setup.sh` in the l2t repository"
    ) from error


def libtorch_version() -> str | None:
    """The libtorch version the native module was built against (e.g. ``"2.13.0"``)."""
    return _l2t.libtorch_version()


def check_torch() -> None:
    """Raises ``ImportError`` if an imported ``torch`` is not the libtorch version of
    the native module (both share ``libtorch_cpu.so`` in one process)."""
    torch = sys.modules.get("torch")
    built = _l2t.libtorch_version()
    if torch is None or built is None:
        return
    have = str(getattr(torch, "__version__", ""))
    if have.split("+")[0] != built.split("+")[0]:
        raise ImportError(
            f"torch {have} is imported, but l2t was built against libtorch {built}. "
            + _torch_hint()
        )


check_torch()

from .env import ResetNeeded, TeachingEnv  # noqa: E402
from .registration import ENV_IDS, env_id, register_envs  # noqa: E402
from .run import Run, compare, train  # noqa: E402
from .teacher import Teacher  # noqa: E402
from .vector import TeachingVectorEnv  # noqa: E402

PRESETS: tuple[str, ...] = tuple(_l2t.PRESETS)
TEACHER_KINDS: tuple[str, ...] = tuple(_l2t.TEACHER_KINDS)

register_envs()
