"""Teachers read the observation's columns by name (issue 33): in ``l2t.compare`` on a
preset, whose run adds the ``irreducible_loss`` column after the labels, a Python
teacher gets the run's column names in every info (and, with ``bind``, before its first
``act``); ``l2t.TeachingEnv(preset)`` has the run's columns, so a rule written against
its ``feature_names`` reads the column it names in the run; declared ``columns`` are
checked before the run and recorded; and a built-in teacher built for another layout
refuses the run's observations instead of misreading them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import l2t


class LossChecker:
    """Keeps everything; checks in every row that the column named ``loss`` is the loss
    recomputed from the columns named ``label_c`` and ``prob_c``."""

    columns = ("loss", "irreducible_loss")

    def __init__(self) -> None:
        self.bound: tuple[str, ...] | None = None
        self.rows = 0

    def bind(self, feature_names: tuple[str, ...]) -> None:
        assert self.rows == 0, "bind comes before the first act"
        self.bound = feature_names

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        names = info["feature_names"]
        assert names == self.bound and isinstance(names, tuple)
        assert obs.shape[1] == len(names)
        classes = sum(1 for n in names if n.startswith("label_"))
        labels = obs[:, [names.index(f"label_{c}") for c in range(classes)]]
        probs = obs[:, [names.index(f"prob_{c}") for c in range(classes)]]
        p_label = (labels * probs).sum(axis=1)
        expected = np.clip(-np.log(np.maximum(p_label, 1e-30)) / (2 * math.log(classes)), 0, 1)
        np.testing.assert_allclose(obs[:, names.index("loss")], expected, atol=1e-4)
        self.rows += obs.shape[0]
        return np.ones(obs.shape[0], dtype=bool)


def test_a_python_teacher_reads_the_column_it_names(tmp_path: Path) -> None:
    checker = LossChecker()
    run = l2t.compare(
        "synthetic", {"checker": checker}, builtin=["no_teach"], seeds=1, plots=False,
        out=tmp_path / "run",
    )
    assert checker.rows > 1000
    assert checker.bound is not None and "irreducible_loss" in checker.bound
    assert checker.bound.index("irreducible_loss") == checker.bound.index("label_9") + 1
    # The preset's env has the run's columns (the same holdout losses, cached).
    assert l2t.TeachingEnv("synthetic").feature_names == checker.bound
    assert "irreducible_loss" not in l2t.TeachingEnv("synthetic", irreducible_loss=False).feature_names
    assert run.report["user_teachers"] == [
        {"label": "checker", "columns": ["loss", "irreducible_loss"]}
    ]
    assert "`checker` (reads loss, irreducible_loss)" in run.summary
    assert "#   `checker` (reads loss, irreducible_loss)" in (run.out / "config.toml").read_text()


def test_a_rule_written_against_the_presets_env_reads_its_column(tmp_path: Path) -> None:
    names = l2t.TeachingEnv("synthetic").feature_names
    loss, label, prob = (
        names.index("loss"),
        [names.index(f"label_{c}") for c in range(10)],
        [names.index(f"prob_{c}") for c in range(10)],
    )
    rows = 0

    def keep_hard(obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        nonlocal rows
        p_label = (obs[:, label] * obs[:, prob]).sum(axis=1)
        expected = np.clip(-np.log(np.maximum(p_label, 1e-30)) / (2 * math.log(10)), 0, 1)
        np.testing.assert_allclose(obs[:, loss], expected, atol=1e-4)
        rows += obs.shape[0]
        return obs[:, loss] > 0.1

    l2t.compare("synthetic", {"keep_hard": keep_hard}, builtin=["no_teach"], seeds=1,
                plots=False, out=tmp_path / "run")
    assert rows > 1000


def test_the_readme_rule_reads_the_loss_by_name(tmp_path: Path) -> None:
    seen: list[float] = []

    def drop_easiest(obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        loss = obs[:, info["feature_names"].index("loss")]
        seen.append(float(loss.max()))
        return loss > np.quantile(loss, 0.2)

    run = l2t.compare(
        "synthetic", {"drop_easiest": drop_easiest}, builtin=["no_teach"], seeds=1,
        plots=False, out=tmp_path / "run",
    )
    assert run.labels == ["no_teach", "drop_easiest"]
    # The loss column is scaled to [0, 1]; prob_9 (what index 23 reads here) is not the loss.
    assert 0 < max(seen) <= 1
    assert run.summary_of("drop_easiest")["kept_ratio_mean"] == pytest.approx(0.8, abs=0.02)


def test_declared_columns_the_env_lacks_are_refused_before_the_run(tmp_path: Path) -> None:
    class Misspelt:
        columns = ["margins"]

        def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
            raise AssertionError("act called")

    with pytest.raises(ValueError, match=r"`mine` reads the column `margins`.*margin"):
        l2t.compare("synthetic", {"mine": Misspelt()}, builtin=["no_teach"], seeds=1,
                    plots=False, out=tmp_path / "run")

    class NotNames:
        columns = "margin"

        def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
            return np.ones(obs.shape[0], dtype=bool)

    with pytest.raises(TypeError, match="columns must be a sequence of column names"):
        l2t.compare("synthetic", {"mine": NotNames()}, builtin=["no_teach"], seeds=1,
                    plots=False, out=tmp_path / "other")


def test_a_builtin_teacher_built_for_other_columns_refuses_the_runs(tmp_path: Path) -> None:
    plain = l2t.Teacher({"kind": "spl"}, l2t.TeachingEnv("synthetic", irreducible_loss=False))
    with pytest.raises(ValueError, match="irreducible_loss"):
        l2t.compare("synthetic", {"spl_py": plain}, builtin=["no_teach"], seeds=1,
                    plots=False, out=tmp_path / "run")


def test_a_builtin_teacher_refuses_an_info_naming_other_columns() -> None:
    env = l2t.TeachingEnv("synthetic")
    obs, info = env.reset(seed=0)
    names = list(env.feature_names)
    teacher = l2t.Teacher({"kind": "spl"}, names)
    assert teacher.act(obs, info).shape == (obs.shape[0],)
    assert teacher.act(obs, {**info, "feature_names": tuple(names)}).shape == (obs.shape[0],)
    swapped = names[:-2] + [names[-1], names[-2]]
    with pytest.raises(ValueError, match="another order"):
        teacher.act(obs, {**info, "feature_names": tuple(swapped)})
