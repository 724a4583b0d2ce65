"""Portable numerics from Python (``L2T_NUMERICS=portable`` before ``import l2t``): the
module pins MKL, ATen and oneDNN to their AVX2 code paths before its first libtorch
operation, so a rollout equals one with those libraries' own variables set outside the
process, and a bad value fails the import with an error naming the variable."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

ROLLOUT = textwrap.dedent(
    """
    import hashlib
    import numpy as np
    import l2t

    env = l2t.TeachingEnv("synthetic")
    obs, info = env.reset(seed=0)
    digest = hashlib.sha256(obs.tobytes())
    for step in range(60):
        mask = np.arange(obs.shape[0]) % 3 != step % 3
        obs, reward, terminated, truncated, info = env.step(mask)
        digest.update(obs.tobytes())
        if terminated or truncated:
            break
    print(l2t.numerics(), digest.hexdigest())
    """
)

#: The rollout's SHA-256 under portable numerics at one intra-op thread, recorded on an
#: Intel Xeon with AVX-512 at commit a0a08eb (native there: 2734e4f4...). A change to the
#: synthetic task, the MLP student or the features changes it too.
PORTABLE_DIGEST = "7d1f88299fb653bc4f18eab78b7d1094c90704976f4666e248dbe73112c9321c"

LIBRARY_VARIABLES = {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def python(code: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """``python -c code`` with no numerics variable in its environment but ``variables``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name != "L2T_NUMERICS" and name not in LIBRARY_VARIABLES
    }
    env.update(variables)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )


def rollout(**variables: str) -> tuple[str, str]:
    done = python(ROLLOUT, **variables)
    assert done.returncode == 0, done.stderr
    mode, digest = done.stdout.split()
    return mode, digest


def has_avx512() -> bool:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return " avx512f" in cpuinfo.read()
    except OSError:
        return False


@pytest.mark.skipif(platform.machine() != "x86_64", reason="portable pins x86-64's AVX2 paths")
def test_portable_numerics_equal_the_libraries_own_variables() -> None:
    portable = rollout(L2T_NUMERICS="portable")
    outside = rollout(**LIBRARY_VARIABLES)
    native = rollout()
    assert portable[0] == "portable" and outside[0] == "portable" and native[0] == "native"
    assert portable[1] == outside[1], "L2T_NUMERICS=portable took effect after libtorch's first operation"
    if platform.machine() == "x86_64" and has_avx512():
        # MKL runs its AVX-512 sgemm natively here, which rounds differently.
        assert native[1] != portable[1]


def test_a_bad_value_fails_the_import_naming_the_variable() -> None:
    done = python("import l2t", L2T_NUMERICS="fast")
    assert done.returncode != 0
    assert "L2T_NUMERICS" in done.stderr and "`fast`" in done.stderr, done.stderr


@pytest.mark.skipif(
    os.environ.get("L2T_CHECK_PORTABLE_DIGEST") != "1",
    reason="opt-in (L2T_CHECK_PORTABLE_DIGEST=1): compares with a digest made on another CPU",
)
def test_portable_rollout_matches_the_digest_recorded_on_an_intel_xeon() -> None:
    """The cross-machine claim itself, for a machine other than the one that recorded
    PORTABLE_DIGEST (an AMD CPU above all): run with L2T_CHECK_PORTABLE_DIGEST=1. It is
    opt-in because it checks MKL's promise on whatever CPU runs it, not l2t's code."""
    mode, digest = rollout(L2T_NUMERICS="portable")
    assert mode == "portable"
    assert digest == PORTABLE_DIGEST
