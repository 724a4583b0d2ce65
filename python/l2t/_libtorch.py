"""Finds and loads the libtorch that the native module ``l2t._l2t`` links.

The module is linked against ``libtorch_cpu.so`` and ``libc10.so`` by soname and
carries no path to them, so one wheel serves every machine. Before it is imported,
:func:`load` puts a libtorch of the module's version into the process; the dynamic
loader then matches the module's needs to the libraries already loaded, by soname. In
order, the first that applies:

1. ``torch`` is already imported: its libtorch is in the process; nothing to load.
2. ``L2T_LIBTORCH`` names a libtorch folder (with ``lib/libtorch_cpu.so``): the user's
   explicit choice. Do not import a torch of another build in that process.
3. ``torch`` is installed (found without importing it): its own ``torch/lib``, as
   PyTorch extensions use it. A ``torch`` imported later then shares those very files.
4. ``LIBTORCH`` (the variable tch's build reads) names a libtorch folder.
5. The folder ``scripts/setup.sh`` of the l2t repository assembles:
   ``$L2T_CACHE/libtorch-<version>-cpu`` (``L2T_CACHE`` defaults to ``~/.cache/l2t``).

A torch or libtorch of another version than the module's is an ``ImportError`` that
names both, since libtorch's C++ symbols change between versions.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import sys
from pathlib import Path

# The libtorch release tch 0.26 (and so the native module) is built against; the
# module's own `libtorch_version()` is checked against it once imported.
VERSION = "2.13.0"

# The libraries the native module needs (readelf -d: NEEDED), in dependency order.
_LIBRARIES = ("libc10.so", "libtorch_cpu.so")

# Where the libtorch of this process came from, for `l2t.libtorch_source()`.
source: str | None = None


def _release(version: str) -> str:
    """``2.13.0+cu130`` -> ``2.13``: the part that fixes libtorch's C++ ABI (patch
    releases of one minor version keep it)."""
    return ".".join(version.split("+")[0].strip().split(".")[:2])


def _installed_torch() -> tuple[Path, str | None] | None:
    """torch's ``lib`` folder and version, found without importing torch, or None."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).parent
    lib = package / "lib"
    if not (lib / "libtorch_cpu.so").exists():
        return None
    version = None
    try:
        text = (package / "version.py").read_text()
        found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
        version = found.group(1) if found else None
    except OSError:
        pass
    return lib, version


def _folder_version(folder: Path) -> str | None:
    """The ``build-version`` of a libtorch folder (as libtorch's zips carry it)."""
    try:
        return (folder / "build-version").read_text().strip()
    except OSError:
        return None


def _how_to_get(version: str) -> str:
    return (
        f"l2t needs libtorch {version}: `pip install torch=={version}` (l2t then uses "
        "torch's own libtorch), or set L2T_LIBTORCH to a libtorch "
        f"{version} folder (pytorch.org's C++ zip, or the one `bash scripts/setup.sh` of "
        "the l2t repository assembles in ~/.cache/l2t)"
    )


def _load_folder(lib: Path, what: str, have: str | None, want: str) -> str:
    if have is not None and _release(have) != _release(want):
        raise ImportError(
            f"{what} is version {have}, but l2t's native module was built against "
            f"libtorch {want}. {_how_to_get(want)}"
        )
    for name in _LIBRARIES:
        path = lib / name
        try:
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        except OSError as error:
            raise ImportError(f"cannot load {path} ({what}): {error}") from error
    return f"{what} {have or ''}".rstrip() + f" ({lib})"


def load(version: str = VERSION) -> str:
    """Puts libtorch ``version`` into the process (see the module doc); returns where
    it came from. Raises ``ImportError`` naming what was tried when none fits."""
    torch = sys.modules.get("torch")
    if torch is not None:
        have = str(getattr(torch, "__version__", ""))
        if _release(have) != _release(version):
            raise ImportError(
                f"torch {have} is imported, but l2t's native module was built against "
                f"libtorch {version}. {_how_to_get(version)}"
            )
        return f"torch {have} (imported)"
    tried: list[str] = []
    explicit = os.environ.get("L2T_LIBTORCH")
    if explicit:
        folder = Path(explicit).expanduser()
        lib = folder / "lib"
        if not (lib / "libtorch_cpu.so").exists():
            raise ImportError(
                f"L2T_LIBTORCH={explicit} has no lib/libtorch_cpu.so. {_how_to_get(version)}"
            )
        return _load_folder(lib, f"L2T_LIBTORCH={explicit}", _folder_version(folder), version)
    installed = _installed_torch()
    if installed is not None:
        lib, have = installed
        return _load_folder(lib, "the installed torch", have, version)
    tried.append("no torch installed")
    cache = Path(
        os.environ.get("L2T_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "l2t"
    )
    candidates: list[tuple[Path, str]] = []
    if os.environ.get("LIBTORCH"):
        candidates.append((Path(os.environ["LIBTORCH"]).expanduser(), "LIBTORCH"))
    candidates.append((cache / f"libtorch-{version}-cpu", "the l2t set-up's cache"))
    for folder, what in candidates:
        lib = folder / "lib"
        if (lib / "libtorch_cpu.so").exists():
            return _load_folder(lib, f"{what} {folder}", _folder_version(folder), version)
        tried.append(f"no {lib / 'libtorch_cpu.so'} ({what})")
    raise ImportError(f"no libtorch found for l2t ({'; '.join(tried)}). {_how_to_get(version)}")
