"""Runs of the ``l2t`` command from Python: :func:`compare` puts Python teachers in the
report beside the built-in ones, :func:`train` trains a built-in learned teacher."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Union, runtime_checkable

import numpy as np

from . import _l2t

__all__ = ["ActTeacher", "PythonTeacher", "Run", "compare", "train"]


@runtime_checkable
class ActTeacher(Protocol):
    """A teacher object: ``act(obs, info)`` gives the keep-mask; ``observe(reward,
    done)``, if the object has it, is called after every step."""

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> Any: ...


#: A teacher written in Python: a callable ``f(obs, info) -> mask`` or an object with
#: ``act(obs, info)`` (:class:`ActTeacher`).
PythonTeacher = Union[Callable[[np.ndarray, dict[str, Any]], Any], ActTeacher]

#: A built-in teacher: a kind (``"spl"``), a checkpoint file, or a ``TeacherConfig``
#: as a dict or JSON (``{"kind": "checkpoint", "path": ...}``).
BuiltinTeacher = Union[str, os.PathLike, Mapping[str, Any]]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Run:
    """The folder a run wrote and its ``report.json``.

    Attributes:
        out: the run folder (``summary.md``, ``report.json``, ``events.jsonl``, the
            CSVs, the figures, ``manifest.json``, ``config.toml``).
        report: ``report.json``, parsed: ``config``, ``training``, ``evaluations``,
            ``summaries`` (one per teacher, in table order, each but the reference row
            with ``vs_first``, its paired difference to the reference row),
            ``reference`` (the reference row's label: ``reference=``, else the first
            row's), ``levels``, ``pairings``, ``plot_warnings``.
        checkpoint: for :func:`train`, the trained teacher's checkpoint file.
    """

    out: Path
    report: dict[str, Any]
    checkpoint: Path | None = None

    @property
    def summary(self) -> str:
        """``summary.md``: the tables, as markdown."""
        return (self.out / "summary.md").read_text()

    @property
    def summaries(self) -> list[dict[str, Any]]:
        """The per-teacher rows of the table, in table order."""
        return list(self.report["summaries"])

    @property
    def labels(self) -> list[str]:
        """The teachers' labels, in table order."""
        return [s["teacher"] for s in self.report["summaries"]]

    @property
    def reference(self) -> str:
        """The label of the reference row, which every other row is paired with."""
        return self.report.get("reference") or self.labels[0]

    def summary_of(self, label: str) -> dict[str, Any]:
        """The table row of the teacher ``label``."""
        for row in self.report["summaries"]:
            if row["teacher"] == label:
                return row
        raise KeyError(f"no teacher {label!r} in the report; teachers: {self.labels}")

    def records_of(self, label: str) -> list[dict[str, Any]]:
        """The evaluation episodes of the teacher ``label``, in seed order."""
        return [r for r in self.report["evaluations"] if r["teacher"] == label]

    @property
    def plot_warnings(self) -> list[str]:
        """Figures that could not be drawn, as messages."""
        return list(self.report.get("plot_warnings", []))

    @property
    def teacher(self) -> dict[str, str]:
        """For :func:`train`: the trained teacher as a built-in teacher config,
        ``{"kind": "checkpoint", "path": ...}`` (for :func:`compare`'s ``teachers``, a
        config file or :class:`l2t.Teacher`)."""
        if self.checkpoint is None:
            raise ValueError(f"the run in {self.out} trained no teacher")
        return {"kind": "checkpoint", "path": os.fspath(self.checkpoint)}


def _config_arg(config: PathLike) -> tuple[str, bool]:
    if isinstance(config, os.PathLike):
        return os.fspath(config), True
    if not isinstance(config, str):
        raise TypeError(
            "config must be a preset or run name, TOML text or a path to a .toml file, "
            f"got {type(config).__name__}"
        )
    return config, False


def _spec(value: BuiltinTeacher) -> str:
    if isinstance(value, Mapping):
        return json.dumps(dict(value))
    return os.fspath(value)


def _overrides(**kwargs: Any) -> dict[str, Any]:
    teaching = kwargs.pop("teaching", None)
    if teaching is not None:
        if not isinstance(teaching, Mapping):
            raise TypeError(
                f"teaching must be a dict of TeachingConfig fields, got {type(teaching).__name__}"
            )
        kwargs["teaching"] = json.dumps(dict(teaching))
    for key in ("out", "data_dir"):
        if kwargs.get(key) is not None:
            kwargs[key] = os.fspath(kwargs[key])
    return kwargs


def _run(out: str | os.PathLike[str], checkpoint: str | os.PathLike[str] | None = None) -> Run:
    folder = Path(out)
    report = json.loads((folder / "report.json").read_text())
    return Run(folder, report, None if checkpoint is None else Path(checkpoint))


def compare(
    config: PathLike,
    teachers: Mapping[str, PythonTeacher | BuiltinTeacher] | None = None,
    *,
    builtin: Sequence[str] | None = None,
    seeds: int | None = None,
    first_seed: int | None = None,
    episodes: int | None = None,
    workers: int | None = None,
    tau: float | None = None,
    teaching: Mapping[str, Any] | None = None,
    test_every: int | None = None,
    checkpoint_every: int | None = None,
    plots: bool | None = None,
    device: str | None = None,
    reference: str | None = None,
    out: PathLike | None = None,
    data_dir: PathLike | None = None,
    fresh: bool = False,
    shipped: bool = True,
    threads: int | None = 1,
    verbose: bool = False,
) -> Run:
    """Compares teachers written in Python with a run config's built-in teachers on the
    same seeds, through the library's one run (``l2t::experiment::run_with``), and
    writes the ``l2t`` command's run folder: ``summary.md`` (the table, with each
    teacher's paired difference to the reference row), ``report.json``, ``events.jsonl``,
    ``curves.csv`` and the other CSVs, and the figures (``convergence``,
    ``convergence_compute``, ``filtered_data``, ... as ``.svg`` and ``.png``).

    Args:
        config: a built-in run by name, as ``l2t reproduce`` takes it (a preset such as
            ``"synthetic"``, a transfer, a longer run), or a run config: TOML text (what
            ``l2t reproduce NAME --print-config`` prints) or a path to a ``.toml`` file.
        teachers: label -> teacher. A Python teacher is a callable ``f(obs, info) ->
            mask`` or an object with ``act(obs, info)`` (and, optionally,
            ``observe(reward, done)``, called after every step): ``obs`` is the
            float32 ``(M, F)`` feature matrix and ``info`` the dict the env gives; the
            mask is whatever the env's ``step`` accepts. A string or a dict is a built-in
            teacher (a kind, a checkpoint file, or a ``TeacherConfig``, e.g.
            ``{"kind": "checkpoint", "path": ...}``). They get rows after the config's
            teachers, in the order given.
        builtin: which of the config's teachers run, by label (e.g. ``["no_teach",
            "spl"]``); an item that is not one of them is read as ``l2t compare
            --teacher`` reads it (``"online_batch"``, ``'SPL-2={"kind": "spl", ...}'``).
            None: all of them (a reproduction trains its learned teachers first, or
            reads them back from the folder's checkpoints). The first is the reference
            row of the paired differences unless ``reference`` names another.
        seeds, first_seed, episodes, workers, tau, test_every, checkpoint_every,
            device: the ``l2t`` command's flags of the same names (evaluation seeds,
            the first of them, teacher-training episodes, worker threads, ...), applied
            by the same code. The seeds are ``first_seed .. first_seed + seeds``:
            ``first_seed + seeds`` must stay below 2**64 and ``seeds`` be at least 1, else
            a ``ValueError`` names them (as it does a negative value or one of 2**64 or
            more). With fewer than 5 seeds ``summary.md`` shows no probability of
            improvement ("n/a (3 seeds < 5)") and says that its intervals are unreliable.
        reference: the label of the reference row: the teacher (built-in or yours)
            every other row is paired with (ratio, paired differences, probability of
            improvement; the headers name it). Default: the first row. An unknown label
            is a ``ValueError`` listing the teachers.
        teaching: overrides of the evaluation task's ``TeachingConfig`` fields, as
            :class:`l2t.TeachingEnv` takes them (``{"max_iterations": 200}``).
        plots: write the figures (default: the config's ``report.plots``).
        out: the run folder (default ``runs/<name>``, the folder of ``l2t reproduce
            <name>``, whose teacher checkpoints are then reused). One process at a
            time: a folder held by another run is a :class:`BlockingIOError` naming it.
        data_dir: folder of the datasets (default ``$L2T_DATA``, else the set-up's).
        fresh: start the folder afresh: remove everything an earlier run wrote into
            it (results, manifest, events, teacher checkpoints; the irreducible-loss
            caches stay) and retrain the learned teachers (or copy in shipped ones: see
            ``shipped``). Without it a folder holding
            a run of another config is a :class:`FileExistsError` naming the folder; the
            same config again resumes (its earlier results are removed first): the
            learned teachers from their checkpoints, and each config teacher whose
            evaluations on every seed are in ``events.jsonl`` is not evaluated again
            (your own teachers always are: their code is no part of the identity).
        shipped: reuse the trained teachers shipped with l2t, as the ``l2t`` command
            does without ``--no-shipped``: a learned teacher whose training identity
            (its config and training task, the episode count aside) has a checkpoint
            and history in ``$L2T_CHECKPOINTS/<training task>/`` (default: the
            package's own ``l2t/checkpoints/``, which the wheel carries) is copied into
            the folder when the folder has none, and training resumes from it (nothing
            to train when it holds the episodes asked for; one holding more is not
            copied). ``False`` trains every learned teacher in the folder.
        threads: libtorch intra-op threads of the process (1, as the ``l2t`` command).
        verbose: print the run's phases on stderr.

    Returns:
        The :class:`Run`: its folder and ``report.json``.

    Raises:
        ValueError: a bad config, override, label (one used twice, or a built-in
            teacher's) or keep-mask; TypeError: a teacher that is not callable, a mask
            that is not an array of numbers; FileNotFoundError / OSError: missing data
            or files; BlockingIOError: the folder is in use; FileExistsError: the
            folder holds a run of another config (pass ``fresh=True`` or another
            ``out``). An exception raised by a
            Python teacher stops the run and is raised as it is.
    """
    source, is_path = _config_arg(config)
    python: list[tuple[str, Any]] = []
    specs: list[tuple[str, str]] = []
    for label, teacher in (teachers or {}).items():
        if not isinstance(label, str):
            raise TypeError(f"teacher labels must be strings, got {label!r}")
        if isinstance(teacher, (str, os.PathLike, Mapping)):
            specs.append((label, _spec(teacher)))
        else:
            python.append((label, teacher))
    folder = _l2t.compare(
        source,
        is_path=is_path,
        python=python,
        specs=specs,
        builtin=None if builtin is None else [str(b) for b in builtin],
        **_overrides(
            seeds=seeds,
            first_seed=first_seed,
            episodes=episodes,
            workers=workers,
            tau=tau,
            teaching=teaching,
            test_every=test_every,
            checkpoint_every=checkpoint_every,
            plots=plots,
            device=device,
            out=out,
            data_dir=data_dir,
        ),
        reference=reference,
        fresh=fresh,
        shipped=shipped,
        threads=threads,
        verbose=verbose,
    )
    return _run(folder)


def train(
    config: PathLike,
    teacher: str | Mapping[str, Any] = "reinforce",
    *,
    label: str | None = None,
    seeds: int | None = None,
    first_seed: int | None = None,
    episodes: int | None = None,
    workers: int | None = None,
    tau: float | None = None,
    teaching: Mapping[str, Any] | None = None,
    test_every: int | None = None,
    checkpoint_every: int | None = None,
    plots: bool | None = None,
    device: str | None = None,
    out: PathLike | None = None,
    data_dir: PathLike | None = None,
    fresh: bool = False,
    shipped: bool = True,
    threads: int | None = 1,
    verbose: bool = False,
) -> Run:
    """Trains one built-in learned teacher as ``l2t train`` does: a run of ``config``
    with that single teacher, trained on the training task's teacher half (with
    checkpoints: the same call again resumes an interrupted training), then evaluated
    on the student half; it writes the same run folder.

    Args:
        config: a preset (``"synthetic"``) or any run ``compare`` takes (its teachers
            are replaced by this one).
        teacher: a learned teacher's kind (``"reinforce"``, ``"actor_critic"``,
            ``"es"``, ``"ppo"``) or its ``TeacherConfig`` as a dict or JSON
            (``{"kind": "es", "seed": 3}``); ``"label=spec"`` or ``label`` names it
            (default: the kind).
        episodes: its training episodes (default: the preset's).
        shipped: reuse a shipped checkpoint of the same training identity instead of
            training (as :func:`compare`); ``False`` trains it here.
        out: the run folder (default ``runs/<name>-train``, as ``l2t train``).
        the others: as :func:`compare`.

    Returns:
        The :class:`Run`, with ``checkpoint`` the trained teacher's file (use it as
        ``run.teacher``, ``{"kind": "checkpoint", "path": run.checkpoint}``, in
        :func:`compare`, a run config or :class:`l2t.Teacher`).
    """
    source, is_path = _config_arg(config)
    spec = teacher if isinstance(teacher, str) else json.dumps(dict(teacher))
    folder, checkpoint = _l2t.train(
        source,
        spec,
        is_path=is_path,
        label=label,
        **_overrides(
            seeds=seeds,
            first_seed=first_seed,
            episodes=episodes,
            workers=workers,
            tau=tau,
            teaching=teaching,
            test_every=test_every,
            checkpoint_every=checkpoint_every,
            plots=plots,
            device=device,
            out=out,
            data_dir=data_dir,
        ),
        fresh=fresh,
        shipped=shipped,
        threads=threads,
        verbose=verbose,
    )
    return _run(folder, checkpoint)
