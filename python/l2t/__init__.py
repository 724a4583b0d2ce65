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

libtorch: the native module carries no libtorch and no path to one. ``import l2t``
first loads libtorch 2.13.0 (``l2t._libtorch``): an imported ``torch``, else
``L2T_LIBTORCH``, else an installed ``torch`` package's own ``torch/lib`` (as PyTorch
extensions do), else ``LIBTORCH`` or the l2t set-up's cache. ``torch`` imported before or
after ``l2t`` then shares those libraries; :func:`libtorch_source` says which were used.
"""

from __future__ import annotations

import os as _os
import sys as _sys
import warnings as _warnings

from . import _libtorch

__all__ = [
    "__version__",
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
    "libtorch_source",
    "libtorch_version",
    "numerics",
    "train",
]

# Whether torch came first, before anything pinned MKL's code path: it may have run
# operations before l2t pins the numerics (L2T_NUMERICS).
_torch_first = "torch" in _sys.modules and "MKL_CBWR" not in _os.environ
_libtorch.source = _libtorch.load()
try:
    from . import _l2t
except ImportError as error:  # pragma: no cover - depends on the machine
    raise ImportError(
        f"cannot load l2t's native module with libtorch from {_libtorch.source}: {error}"
    ) from error
if _l2t.libtorch_version() not in (None, _libtorch.VERSION):  # pragma: no cover - a build error
    raise ImportError(
        f"l2t's native module was built against libtorch {_l2t.libtorch_version()}, "
        f"but its package expects {_libtorch.VERSION} (l2t/_libtorch.py): rebuild it"
    )

if _torch_first and _l2t.numerics() == "portable":
    _warnings.warn(
        "torch was imported before l2t: if it already ran an operation, MKL, ATen and oneDNN "
        "keep the code paths they chose then, and numerics are not portable. Set "
        "L2T_NUMERICS=portable before Python starts and import l2t first, or set MKL_CBWR=AVX2, "
        "ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2 before Python starts",
        RuntimeWarning,
        stacklevel=2,
    )

# The trained teachers shipped as package data: the default for runs from Python and
# from the wheel's `l2t` command, whose build tree is not on this machine.
_packaged = _os.path.join(_os.path.dirname(__file__), "checkpoints")
if _os.path.isdir(_packaged):
    _l2t.use_packaged_checkpoints(_packaged)

#: The package's version: the crate's, compiled into the native module (the wheel's
#: metadata carries the same, from python/Cargo.toml).
__version__: str = _l2t.__version__


def libtorch_version() -> str | None:
    """The libtorch version the native module was built against (e.g. ``"2.13.0"``)."""
    return _l2t.libtorch_version()


def numerics() -> str:
    """The floating-point code paths of this process: ``"native"`` (each library's
    fastest for this CPU) or ``"portable"`` (MKL, ATen and oneDNN pinned to AVX2, the same
    bits on every x86-64 machine with AVX2). ``L2T_NUMERICS=portable`` in the environment
    before ``import l2t`` chooses portable; run folders record it in ``manifest.json``."""
    return _l2t.numerics()


def libtorch_source() -> str | None:
    """Where the process's libtorch came from when ``l2t`` was imported: an imported
    torch, ``L2T_LIBTORCH``, the installed torch's ``torch/lib``, ``LIBTORCH`` or the
    set-up's cache (see ``l2t._libtorch``)."""
    return _libtorch.source


from .env import ResetNeeded, TeachingEnv  # noqa: E402
from .registration import ENV_IDS, env_id, register_envs  # noqa: E402
from .run import Run, compare, train  # noqa: E402
from .teacher import Teacher  # noqa: E402
from .vector import TeachingVectorEnv  # noqa: E402

PRESETS: tuple[str, ...] = tuple(_l2t.PRESETS)
TEACHER_KINDS: tuple[str, ...] = tuple(_l2t.TEACHER_KINDS)

register_envs()
