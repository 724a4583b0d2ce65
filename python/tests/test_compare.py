"""Python teachers in the report: ``l2t.compare`` and ``l2t.train`` write the ``l2t``
command's run folder through the Rust ``run_with`` (short synthetic runs, 2 seeds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import l2t

SEEDS = 2
# The synthetic reproduction's SPL (the preset's `epochs_to_all`).
SPL = {"kind": "spl", "epochs_to_all": 1.0}


def keep_all(obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    return np.ones(obs.shape[0], dtype=bool)


class DropEveryFifth:
    """An object teacher: float32 0/1 masks (as SB3 emits), counts its calls."""

    def __init__(self) -> None:
        self.acts = 0
        self.observed: list[tuple[float, bool]] = []
        self.infos: list[dict[str, Any]] = []

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        assert obs.dtype == np.float32 and obs.ndim == 2
        self.acts += 1
        self.infos.append(info)
        return (np.arange(obs.shape[0]) % 5 != 0).astype(np.float32)

    def observe(self, reward: float, done: bool) -> None:
        self.observed.append((reward, done))


def events(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


def test_python_teachers_get_rows_pairs_records_events_and_figures(tmp_path: Path) -> None:
    mine = DropEveryFifth()
    # The reproduction's teachers also read the irreducible_loss column (after the
    # label one-hot), which the preset's env has too.
    names = list(l2t.TeachingEnv("synthetic").feature_names)
    assert names.index("irreducible_loss") == names.index("iteration") - 1
    run = l2t.compare(
        "synthetic",
        {"keep_all": keep_all, "fifth": mine, "spl_py": l2t.Teacher(SPL, names)},
        builtin=["no_teach", "spl"],
        seeds=SEEDS,
        workers=2,
        out=tmp_path / "run",
    )
    assert run.out == tmp_path / "run"
    assert run.labels == ["no_teach", "spl", "keep_all", "fifth", "spl_py"]
    # The same fresh students on the same seeds: keeping everything by hand is NoTeach,
    # the built-in SPL driven from Python is SPL.
    def to_tau(label: str) -> list[int | None]:
        return [r["episode"]["effective_instances_to_tau"] for r in run.records_of(label)]

    assert [r["seed"] for r in run.records_of("keep_all")] == list(range(SEEDS))
    assert to_tau("keep_all") == to_tau("no_teach")
    assert run.report["config"]["teachers"][1]["teacher"] == SPL
    assert to_tau("spl_py") == to_tau("spl") != to_tau("no_teach")
    # Paired differences to the first row, in report.json and summary.md.
    for label in ("keep_all", "fifth"):
        assert run.summary_of(label)["vs_first"]["instances_to_tau"]["pairs"] == SEEDS
    assert run.summary_of("no_teach").get("vs_first") is None
    summary = (run.out / "summary.md").read_text()
    assert summary == run.summary
    table = summary.split("\n\n## ")[0]  # the comparison, before the levels table
    rows = {row.split("|")[1].strip(): row for row in table.splitlines() if row.startswith("| ")}
    assert f"({SEEDS} seeds)" in rows["fifth"] and f"({SEEDS} seeds)" in rows["keep_all"]
    # The object teacher was asked and told at every step, with the env's info.
    assert mine.acts == len(mine.observed) > 0
    assert sum(done for _, done in mine.observed) == SEEDS
    assert {"iteration", "effective_instances", "best_dev_accuracy"} <= set(mine.infos[0])
    assert run.summary_of("fifth")["kept_ratio_mean"] == pytest.approx(0.8, abs=0.01)
    # events.jsonl, the CSVs and the figures (or why not).
    evaluated = [e for e in events(run.out) if e["event"] == "evaluation"]
    assert sorted(e["seed"] for e in evaluated if e["teacher"] == "fifth") == list(range(SEEDS))
    curves = (run.out / "curves.csv").read_text().splitlines()
    assert any(line.startswith("fifth,") for line in curves)
    for name in ("report.json", "manifest.json", "config.toml", "loss_rank_drops.csv"):
        assert (run.out / name).is_file(), name
    assert (run.out / "convergence.svg").is_file() or run.plot_warnings


def test_a_config_as_toml_text_or_file_with_builtin_specs(tmp_path: Path) -> None:
    first = l2t.compare(
        "synthetic",
        {"online": "online_batch"},
        builtin=["no_teach"],
        seeds=1,
        plots=False,
        out=tmp_path / "a",
    )
    assert first.labels == ["no_teach", "online"]
    toml = first.out / "config.toml"
    from_file = l2t.compare(toml, {"mine": keep_all}, out=tmp_path / "b")
    from_text = l2t.compare(toml.read_text(), {"mine": keep_all}, out=tmp_path / "c")
    for run in (from_file, from_text):
        assert run.labels == ["no_teach", "online", "mine"]
        assert run.report["config"]["preset"]["eval_seeds"] == 1
        assert not (run.out / "convergence.svg").exists()


def test_an_exception_of_a_python_teacher_is_raised_as_it_is(tmp_path: Path) -> None:
    class Boom(Exception):
        pass

    calls = []

    def fails(obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        calls.append(1)
        if len(calls) == 3:
            raise Boom("the teacher broke at step 3")
        return np.ones(obs.shape[0], dtype=bool)

    with pytest.raises(Boom, match="broke at step 3"):
        l2t.compare("synthetic", {"fails": fails}, builtin=["no_teach"], seeds=SEEDS, out=tmp_path)
    assert len(calls) == 3
    # The folder is free again; observe's exceptions too.
    teacher = DropEveryFifth()

    def observe(reward: float, done: bool) -> None:
        raise KeyError("observe broke")

    teacher.observe = observe  # type: ignore[method-assign]
    # Another config (1 seed): the folder of the failed run is cleared first.
    with pytest.raises(KeyError, match="observe broke"):
        l2t.compare(
            "synthetic", {"obj": teacher}, builtin=["no_teach"], seeds=1, out=tmp_path, fresh=True
        )
    assert teacher.acts == 1


@pytest.mark.parametrize(
    ("mask", "error", "match"),
    [
        (lambda m: np.full(m, 0.5), ValueError, r"keep-mask of teacher `bad`.*found 0\.5"),
        (lambda m: np.ones(m + 1, dtype=bool), ValueError, r"shape \(20,\).*got shape \(21,\)"),
        (lambda m: "keep", TypeError, "keep-mask of teacher `bad`"),
    ],
)
def test_a_bad_mask_is_refused_as_the_env_refuses_it(
    tmp_path: Path, mask: Any, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        l2t.compare(
            "synthetic",
            {"bad": lambda obs, info: mask(obs.shape[0])},
            builtin=["no_teach"],
            seeds=1,
            out=tmp_path,
        )


def test_bad_labels_teachers_and_configs_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="`no_teach` is used twice"):
        l2t.compare("synthetic", {"no_teach": keep_all}, builtin=["no_teach"], out=out)
    with pytest.raises(ValueError, match="`spl` is used twice"):
        l2t.compare("synthetic", {"spl": keep_all}, builtin=["no_teach", "spl"], out=out)
    with pytest.raises(TypeError, match="teacher `x` must be a callable"):
        l2t.compare("synthetic", {"x": 3}, builtin=["no_teach"], out=out)
    with pytest.raises(ValueError, match="unknown preset `nope`.*synthetic"):
        l2t.compare("nope", {"mine": keep_all}, out=out)
    with pytest.raises(ValueError, match="at least one built-in teacher"):
        l2t.compare("synthetic", {"mine": keep_all}, builtin=[], out=out)
    with pytest.raises(ValueError, match="seeds = 0.*at least one seed"):
        l2t.compare("synthetic", {"mine": keep_all}, builtin=["no_teach"], seeds=0, out=out)
    with pytest.raises(ValueError, match="run config TOML text"):
        l2t.compare("checkpoint_every = 1\n[preset]\n", out=out)
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        l2t.compare(tmp_path / "missing.toml", out=out)
    assert not out.exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        # The seeds would wrap around to 0: both arguments are named.
        ({"first_seed": 2**64 - 1, "seeds": 2}, r"seeds = 2 from first_seed = 18446744073709551615"),
        # Out of u64's range: a ValueError naming the argument, not a bare OverflowError.
        ({"first_seed": 2**64}, r"first_seed must be None or an integer in \[0, 2\*\*64\)"),
        ({"first_seed": -1}, r"first_seed must be None or an integer in \[0, 2\*\*64\)"),
        ({"seeds": -3}, r"seeds must be None or an integer in \[0, 2\*\*64\)"),
        ({"seeds": 2**70}, r"seeds must be None or an integer"),
        # The config's count with a first seed too large for it: the config field is named.
        ({"first_seed": 2**64 - 3}, r"\[preset\] eval_seeds = 5 from first_seed"),
    ],
)
def test_seed_ranges_are_checked_and_name_the_argument(
    tmp_path: Path, kwargs: dict[str, Any], match: str
) -> None:
    out = tmp_path / "never"
    for run in (
        lambda: l2t.compare("synthetic", {"mine": keep_all}, builtin=["no_teach"], out=out, **kwargs),
        lambda: l2t.train("synthetic", "reinforce", out=out, **kwargs),
    ):
        with pytest.raises(ValueError, match=match):
            run()
    assert not out.exists()


def test_the_reference_row_is_chosen_by_label(tmp_path: Path) -> None:
    run = l2t.compare(
        "synthetic",
        {"mine": keep_all},
        builtin=["no_teach", "spl"],
        seeds=SEEDS,
        reference="spl",
        plots=False,
        out=tmp_path,
    )
    assert run.reference == "spl"
    assert run.summary_of("spl").get("vs_first") is None
    assert run.summary_of("no_teach")["vs_first"] is not None
    assert run.summary_of("mine")["vs_first"] is not None
    summary = run.summary
    assert "| P(fewer instances than spl) |" in summary
    # Two seeds: no probability shown, and a note on the intervals.
    assert f"n/a ({SEEDS} seeds < 5)" in summary
    assert f"Few seeds ({SEEDS} < 5)" in summary
    with pytest.raises(ValueError, match=r"reference: `nobody` is not a teacher.*`no_teach`.*`mine`"):
        l2t.compare(
            "synthetic", {"mine": keep_all}, builtin=["no_teach"], reference="nobody", out=tmp_path / "x"
        )


HOLD = textwrap.dedent(
    """
    import fcntl, json, os, socket, sys, time
    path = os.path.join(sys.argv[1], "l2t.lock")
    f = open(path, "a+")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    f.seek(0); f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                        "command": ["holder-of-the-folder"],
                        "started_unix_seconds": int(time.time())}) + "\\n")
    f.flush()
    print("held", flush=True)
    sys.stdin.read()
    """
)


def test_a_folder_held_by_another_process_is_refused_naming_it(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, os.fspath(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        named = rf"in use by pid {holder.pid} .*holder-of-the-folder"
        with pytest.raises(BlockingIOError, match=named):
            l2t.compare("synthetic", {"m": keep_all}, builtin=["no_teach"], seeds=1, out=tmp_path)
        assert not (tmp_path / "events.jsonl").exists()
    finally:
        holder.communicate("", timeout=10)
    run = l2t.compare("synthetic", {"mine": keep_all}, builtin=["no_teach"], seeds=1, out=tmp_path)
    assert run.labels == ["no_teach", "mine"]


def test_train_gives_a_checkpoint_that_teaches(tmp_path: Path) -> None:
    trained = l2t.train("synthetic", "es", episodes=4, seeds=1, plots=False, out=tmp_path / "es")
    assert trained.labels == ["es"]
    assert trained.checkpoint is not None and trained.checkpoint.is_file()
    assert trained.checkpoint.parent == tmp_path / "es" and trained.checkpoint.suffix == ".ckpt"
    assert len(trained.report["training"][0]["episodes"]) == 4
    # As a built-in teacher of a comparison, beside a Python one, and from Python.
    run = l2t.compare(
        "synthetic",
        {"es": trained.teacher, "mine": keep_all},
        builtin=["no_teach"],
        seeds=1,
        plots=False,
        out=tmp_path / "cmp",
    )
    assert run.labels == ["no_teach", "es", "mine"]
    # Trained with the irreducible_loss column, it teaches on the preset's env (which
    # has it) and refuses an env without it, naming the column and its setting.
    ckpt = {"kind": "checkpoint", "path": os.fspath(trained.checkpoint)}
    env = l2t.TeachingEnv("synthetic", split="student")
    obs, info = env.reset(seed=0)
    assert l2t.Teacher(ckpt, env).act(obs, info).shape == (obs.shape[0],)
    plain = l2t.TeachingEnv("synthetic", split="student", irreducible_loss=False)
    with pytest.raises(ValueError, match="missing irreducible_loss.*irreducible_loss_feature"):
        l2t.Teacher(ckpt, plain)
    with pytest.raises(ValueError, match="learned teacher"):
        l2t.train("synthetic", "spl", out=tmp_path / "spl")



# Training timings no run here writes: a shipped history copied into a folder is told
# apart from one trained there.
SHIPPED_SECONDS = 12345.0


def ship(folder: Path, shipped: Path) -> None:
    """Ships the trained teachers of `folder` into `shipped` (laid out as the repository's
    python/l2t/checkpoints/<training task>/), their histories' timings set to SHIPPED_SECONDS."""
    shipped.mkdir(parents=True, exist_ok=True)
    for checkpoint in folder.glob("*.ckpt"):
        history = checkpoint.with_name(checkpoint.stem + "-training.jsonl")
        lines = [json.loads(line) for line in history.read_text().splitlines()]
        for line in lines:
            line["summary"]["wall_seconds"] = SHIPPED_SECONDS
        (shipped / history.name).write_text("".join(json.dumps(line) + "\n" for line in lines))
        (shipped / checkpoint.name).write_bytes(checkpoint.read_bytes())


def training_seconds(run: l2t.Run) -> list[float]:
    return [e["summary"]["wall_seconds"] for e in run.report["training"][0]["episodes"]]


def test_train_and_compare_reuse_a_shipped_teacher_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    common: dict[str, Any] = {"episodes": 4, "seeds": 1, "plots": False}
    monkeypatch.setenv("L2T_CHECKPOINTS", os.fspath(tmp_path / "none"))
    trained = l2t.train("synthetic", "es", out=tmp_path / "own-train", **common)
    own = l2t.compare(
        "synthetic", builtin=["no_teach", "es"], out=tmp_path / "own-cmp", shipped=False, **common
    )
    assert own.labels == ["no_teach", "es"] and SHIPPED_SECONDS not in training_seconds(own)
    for folder in ("own-train", "own-cmp"):
        ship(tmp_path / folder, tmp_path / "shipped" / "synthetic")
    monkeypatch.setenv("L2T_CHECKPOINTS", os.fspath(tmp_path / "shipped"))
    capfd.readouterr()

    reused = l2t.train("synthetic", "es", out=tmp_path / "t", verbose=True, **common)
    err = capfd.readouterr().err
    assert "reusing es trained before" in err and "(4 episodes read back" in err, err
    assert training_seconds(reused) == [SHIPPED_SECONDS] * 4
    assert reused.checkpoint is not None and trained.checkpoint is not None
    assert reused.checkpoint.read_bytes() == trained.checkpoint.read_bytes()
    run = l2t.compare(
        "synthetic", {"mine": keep_all}, builtin=["no_teach", "es"], out=tmp_path / "c", **common
    )
    assert run.labels == ["no_teach", "es", "mine"]
    assert training_seconds(run) == [SHIPPED_SECONDS] * 4
    # More episodes than shipped (a whole update of 4 more): training goes on from the copy.
    more = l2t.train("synthetic", "es", out=tmp_path / "m", **{**common, "episodes": 8})
    assert training_seconds(more)[:4] == [SHIPPED_SECONDS] * 4
    assert len(training_seconds(more)) == 8 and SHIPPED_SECONDS not in training_seconds(more)[4:]
    # shipped=False: trained in the folder.
    capfd.readouterr()
    mine = l2t.train("synthetic", "es", out=tmp_path / "f", shipped=False, verbose=True, **common)
    err = capfd.readouterr().err
    assert "reusing" not in err and SHIPPED_SECONDS not in training_seconds(mine), err
