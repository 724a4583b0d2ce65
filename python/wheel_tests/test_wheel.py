"""The installed wheel, outside the repository (run by ``scripts/wheel.sh``).

``scripts/wheel.sh`` builds the wheel with ``maturin build``, installs it into fresh
virtual environments in a temporary folder, copies this file there and runs pytest in
that folder, so that ``import l2t`` can only find the installed package. One venv has
torch 2.13.0 installed alone, without its CUDA requirements (``L2T_WHEEL_VENV=torch-alone``),
one torch 2.13.0 and Stable-Baselines3 (``L2T_WHEEL_VENV=torch``), one neither
(``L2T_WHEEL_VENV=bare``). Every check runs in a subprocess: what libtorch a process
loads is decided once, at its first ``import l2t`` or ``import torch``. The ``l2t``
command is the console script the wheel installed beside this venv's Python.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

VENV = os.environ.get("L2T_WHEEL_VENV", "")
with_torch = pytest.mark.skipif(VENV != "torch", reason="needs the venv with torch")
bare = pytest.mark.skipif(VENV != "bare", reason="needs the venv without torch")
torch_alone = pytest.mark.skipif(VENV != "torch-alone", reason="needs torch without CUDA")

# The console script `pip install` put beside this venv's Python.
L2T = Path(sys.executable).parent / "l2t"

SITE = Path(sysconfig.get_paths()["purelib"]).resolve()

STEP = """
import numpy as np, gymnasium
env = gymnasium.make("l2t/Synthetic-v0", seed=0, teaching={"max_iterations": 10})
obs, info = env.reset(seed=0)
done = False
while not done:
    obs, reward, terminated, truncated, info = env.step(np.ones(20, dtype=np.float32))
    done = terminated or truncated
assert info["iteration"] == 10, info
print("source:", l2t.libtorch_source())
print("file:", l2t.__file__)
"""


def run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    merged = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=merged
    )


def installed_file(stdout: str) -> Path:
    line = next(line for line in stdout.splitlines() if line.startswith("file:"))
    return Path(line.split(":", 1)[1].strip()).resolve()


def test_the_package_is_the_installed_wheel() -> None:
    result = run("import l2t\n" + STEP)
    assert result.returncode == 0, result.stderr[-3000:]
    assert SITE in installed_file(result.stdout).parents, result.stdout


def test_the_version_is_the_wheels() -> None:
    # One source: the crate's version, in the native module and the wheel's metadata.
    code = "import importlib.metadata, l2t\nprint(l2t.__version__, importlib.metadata.version('l2t'))"
    result = run(code)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = os.environ.get("L2T_WHEEL_VERSION", "")
    assert result.stdout.split() == [expected, expected], (result.stdout, expected)


def l2t_command(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(L2T), *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )


def test_the_l2t_command_is_installed() -> None:
    help = l2t_command("--help")
    assert help.returncode == 0, help.stderr[-3000:]
    assert "Usage: l2t [OPTIONS] <COMMAND>" in help.stdout
    for command in ("reproduce", "train", "compare", "benchmark", "list"):
        assert f"  {command}" in help.stdout, help.stdout
    version = l2t_command("--version")
    assert version.returncode == 0 and version.stdout.split() == [
        "l2t",
        os.environ.get("L2T_WHEEL_VERSION", ""),
    ], version.stdout
    refused = l2t_command("--no-such-flag")
    assert refused.returncode == 2
    assert "unexpected argument '--no-such-flag'" in refused.stderr
    unknown = l2t_command("compare", "no-such-preset", "--teacher", "no_teach")
    assert unknown.returncode == 1
    assert "unknown preset `no-such-preset`" in unknown.stderr


def test_the_shipped_teachers_come_with_the_wheel() -> None:
    # The main job's trained ES teachers are package data: runs from this install (and
    # its `l2t` command, which imports the package first) reuse the installed copy, not a
    # build tree that is not on the user's machine.
    code = "import l2t, l2t._l2t as core\nprint(core.shipped_checkpoints_dir())"
    env = {name: value for name, value in os.environ.items() if name != "L2T_CHECKPOINTS"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = Path(result.stdout.strip()).resolve()
    assert SITE in folder.parents, folder
    checkpoints = sorted((folder / "fashion-mnist-mlp").glob("*.ckpt"))
    assert len(checkpoints) >= 2, checkpoints
    for checkpoint in checkpoints:
        history = checkpoint.with_name(checkpoint.stem + "-training.jsonl")
        assert history.is_file() and history.stat().st_size > 0, history


def test_the_l2t_command_runs_a_comparison(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ("--quiet", "compare", "synthetic", "--teacher", "no_teach", "--seeds", "2")
    result = l2t_command(*args, "--no-plots", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"results written to {out}" in result.stdout
    summary = (out / "summary.md").read_text()
    assert "| no_teach | 2/2 |" in summary, summary
    assert len((out / "events.jsonl").read_text().splitlines()) >= 2


def test_ctrl_c_stops_the_l2t_command_with_130(tmp_path: Path) -> None:
    # As the binary on SIGINT: the run stops at its next safe point, every line of
    # events.jsonl is complete, and the command exits with 130.
    out = tmp_path / "run"
    events = out / "events.jsonl"
    args = ["--quiet", "compare", "synthetic", "--teacher", "no_teach", "--seeds", "400"]
    child = subprocess.Popen(
        [str(L2T), *args, "--no-plots", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        # A child of a background job inherits SIGINT ignored; Ctrl-C's handler as in a
        # terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        start = time.monotonic()
        while not (events.exists() and len(events.read_text().splitlines()) >= 3):
            assert child.poll() is None, child.communicate()[1][-3000:]
            assert time.monotonic() - start < 120, "no evaluation in 120 s"
            time.sleep(0.02)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, stderr[-3000:]
    assert "l2t: interrupted (SIGINT)" in stderr
    lines = events.read_text().splitlines()
    assert 3 <= len(lines) < 400
    for line in lines:
        json.loads(line)


@torch_alone
def test_torch_without_its_cuda_requirements_serves_l2t() -> None:
    # `pip install --no-deps torch==2.13.0` and the two CUDA wheels libtorch_cpu.so
    # needs: l2t loads torch/lib without importing torch.
    result = run("import l2t\n" + STEP)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "source: the installed torch 2.13.0" in result.stdout, result.stdout
    assert not list(SITE.glob("nvidia_cublas*")), "the lean install has no cuBLAS"


@with_torch
def test_torch_first_then_l2t() -> None:
    code = "import torch\nimport l2t\n" + STEP + TORCH_WORKS
    result = run(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "source: torch 2.13.0" in result.stdout and "(imported)" in result.stdout


@with_torch
def test_l2t_first_uses_the_installed_torch_libtorch() -> None:
    code = "import l2t\nimport torch\n" + STEP + TORCH_WORKS
    result = run(code)
    assert result.returncode == 0, result.stderr[-3000:]
    # l2t loaded torch's own torch/lib before torch itself was imported.
    torch_lib = str(SITE / "torch" / "lib")
    assert "source: the installed torch 2.13.0" in result.stdout, result.stdout
    assert torch_lib in result.stdout, result.stdout


TORCH_WORKS = """
import torch
net = torch.nn.Linear(obs.shape[-1], 1)
loss = net(torch.from_numpy(obs)).pow(2).mean()
loss.backward()
assert net.weight.grad is not None
print("torch ok", torch.__version__)
"""


@with_torch
def test_an_unmodified_sb3_ppo_script(tmp_path: Path) -> None:
    # Stable-Baselines3's own quick start, with l2t's env id: make_vec_env passes
    # render_mode="rgb_array", its policies give float32 masks, MlpPolicy flattens (M, F).
    code = """
import l2t
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

env = make_vec_env("l2t/Synthetic-v0", n_envs=2)
model = PPO("MlpPolicy", env, verbose=0)
model.learn(total_timesteps=4096)
obs = env.reset()
action, _ = model.predict(obs, deterministic=True)
obs, rewards, dones, infos = env.step(action)
print("sb3 ok", model.num_timesteps)
"""
    # $SB3_LOGDIR: SB3's log folder in the test's, not a /tmp/SB3-<time> left behind.
    result = run(code, env={"SB3_LOGDIR": str(tmp_path / "sb3-logs")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sb3 ok 4096" in result.stdout


@bare
def test_without_torch_the_setup_libtorch_is_found() -> None:
    # No torch, no L2T_LIBTORCH: the folder scripts/setup.sh assembles in the cache.
    result = run("import l2t\n" + STEP, {"L2T_LIBTORCH": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the l2t set-up's cache" in result.stdout, result.stdout


@bare
def test_l2t_libtorch_names_the_folder() -> None:
    folder = os.environ["L2T_TEST_LIBTORCH"]
    result = run("import l2t\n" + STEP, {"L2T_LIBTORCH": folder, "L2T_CACHE": "/nonexistent"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"L2T_LIBTORCH={folder}" in result.stdout, result.stdout


@bare
def test_a_wrong_l2t_libtorch_is_a_clear_import_error(tmp_path: Path) -> None:
    result = run("import l2t", {"L2T_LIBTORCH": str(tmp_path)})
    assert result.returncode != 0
    assert f"L2T_LIBTORCH={tmp_path} has no lib/libtorch_cpu.so" in result.stderr
    assert "pip install torch==2.13.0" in result.stderr


@bare
def test_a_libtorch_of_another_version_is_refused(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libtorch_cpu.so").write_bytes(b"")
    (tmp_path / "build-version").write_text("2.7.1\n")
    result = run("import l2t", {"L2T_LIBTORCH": str(tmp_path)})
    assert result.returncode != 0
    assert "is version 2.7.1, but l2t's native module was built against libtorch 2.13.0" in (
        result.stderr
    )


@bare
def test_no_libtorch_anywhere_says_how_to_get_one() -> None:
    result = run(
        "import l2t", {"L2T_LIBTORCH": "", "LIBTORCH": "", "L2T_CACHE": "/nonexistent"}
    )
    assert result.returncode != 0
    assert "no libtorch found for l2t" in result.stderr
    assert "pip install torch==2.13.0" in result.stderr
