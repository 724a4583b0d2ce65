"""torch 2.13 and l2t in one process, in both import orders (subprocesses).

Both load libtorch_cpu.so: the loader shares it by soname, so the versions must match.
The tests skip only when torch is not installed (scripts/test.sh installs it).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="torch is not installed (scripts/test.sh installs torch==2.13.0 unless L2T_SKIP_TORCH=1)",
)

USE_BOTH = """
import numpy as np
import gymnasium
env = gymnasium.make("l2t/Synthetic-v0", seed=0, teaching={"max_iterations": 10})
obs, info = env.reset(seed=0)
done = False
while not done:
    obs, reward, terminated, truncated, info = env.step(np.ones(20, dtype=bool))
    done = terminated or truncated
assert info["iteration"] == 10, info
t = torch.from_numpy(obs).sum()
net = torch.nn.Linear(obs.shape[-1], 1)
loss = net(torch.from_numpy(obs)).pow(2).mean()
loss.backward()
assert torch.isfinite(t) and net.weight.grad is not None
print("ok", torch.__version__, float(t))
"""


@needs_torch
@pytest.mark.parametrize("order", ["import torch\nimport l2t\n", "import l2t\nimport torch\n"])
def test_torch_and_l2t_in_one_process(order: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", order + USE_BOTH], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok 2.13.0"), result.stdout


def test_torch_version_mismatch_is_a_clear_import_error() -> None:
    code = (
        "import sys, types\n"
        "sys.modules['torch'] = types.SimpleNamespace(__version__='2.99.0')\n"
        "import l2t\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert (
        "torch 2.99.0 is imported, but l2t's native module was built against libtorch 2.13.0"
        in result.stderr
    )
    assert "pip install torch==2.13.0" in result.stderr


def test_an_installed_torch_of_another_version_is_refused_before_loading(tmp_path) -> None:
    # A torch package that is installed but not imported: l2t reads its version.py and
    # would load its torch/lib, so another version is refused before anything loads.
    fake = tmp_path / "torch"
    (fake / "lib").mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('not to be imported')\n")
    (fake / "version.py").write_text("__version__ = '2.7.1+cpu'\n")
    (fake / "lib" / "libtorch_cpu.so").write_bytes(b"")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "L2T_LIBTORCH": ""}
    result = subprocess.run(
        [sys.executable, "-c", "import l2t"], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode != 0
    assert (
        "the installed torch is version 2.7.1+cpu, but l2t's native module was built "
        "against libtorch 2.13.0" in result.stderr
    ), result.stderr[-2000:]


def test_libtorch_source_names_where_libtorch_came_from() -> None:
    code = "import l2t; print(l2t.libtorch_source()); print(l2t.libtorch_version())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    source, version = result.stdout.strip().splitlines()
    assert version == "2.13.0"
    assert "libtorch" in source or "torch" in source, source
