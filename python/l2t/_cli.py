"""The ``l2t`` command of the wheel (``[project.scripts]`` in pyproject.toml).

It runs the Rust CLI compiled into the native module (``l2t._l2t.cli``), the same code
as the ``l2t`` binary of a source build, with libtorch loaded as ``import l2t`` loads
it. Ctrl-C stops a run at its next safe point and exits with 130, as the binary does.
"""

from __future__ import annotations

import signal
import sys


def main(argv: list[str] | None = None) -> int:
    """Runs ``l2t`` with ``argv`` (default: ``sys.argv[1:]``) and returns its exit status
    (the console script's wrapper exits with it)."""
    from . import _l2t  # importing the package first loads libtorch (l2t._libtorch)

    args = sys.argv[1:] if argv is None else list(argv)
    # `l2t list | head`: a closed pipe ends the command quietly, as it ends the binary,
    # instead of a Rust panic on EPIPE (Python ignores SIGPIPE). This process is the
    # command alone, so the default disposition harms nothing else.
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # Python's own buffered output first, so it does not land after the command's.
    sys.stdout.flush()
    sys.stderr.flush()
    return int(_l2t.cli(args))


if __name__ == "__main__":  # python -m l2t._cli ...
    sys.exit(main())
