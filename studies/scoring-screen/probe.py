"""Screening before scoring: can a teacher skip the scoring forward of rows it would not
keep, deciding from what it knows without the student (the label, the holdout model's
irreducible loss, the student's state), and so cut the compute that dominates RHO-LOSS's?

Fashion-MNIST, MLP students, tau = 0.86 (the main job's task, with the irreducible-loss
feature). Every rule is a Python teacher through `l2t.compare`. It first screens the
incoming batch of M = 20 on free features, then keeps the K = 6 rows of largest
reducible loss among the rows that passed (RHO-LOSS's compute share, as `rho6` in
studies/batch-diversity); all of them when fewer than K pass. The env scores every row,
so the probe counts the rows a screening env would not have scored, per episode up to
the end (tau), and the summary charges the episode its training compute less one
scoring forward per screened-out row. The student's path is exactly the one a screening
env would give: the screened-out rows are never kept, and the kept rows and their order
are the same.

Usage (from the repository, after `bash scripts/setup.sh`; `source .venv/bin/activate`):
  python studies/scoring-screen/probe.py NAME[,NAME...] OUT_FOLDER [FIRST_SEED]
  python studies/scoring-screen/probe.py --table OUT_FOLDER[,OUT_FOLDER...] --ref NAME

Seeds FIRST_SEED to FIRST_SEED + 19 (default 0): selection seeds only. The rules count
per episode, so each run uses one worker; run two processes side by side instead.
"""
import functools
import json
import math
import sys
from pathlib import Path

import numpy as np
import l2t

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "text-task"))
from paired import mean_ci  # noqa: E402  (the studies' one t-interval)

K = 6  # rows kept of each batch of M = 20
LOSS_SCALE = 2.0 * math.log(10)  # the env's `Fixed` loss scaling: loss / (2 ln C), C = 10


@functools.cache
def _at(names: tuple[str, ...]) -> dict[str, int]:
    """The columns the rules read, by name in the run's layout."""

    def at(name: str) -> int:
        if name not in names:
            raise ValueError(f"the run's features have no column `{name}`: {', '.join(names)}")
        return names.index(name)

    return {name: at(name) for name in COLUMNS}


COLUMNS = ("loss", "irreducible_loss", "best_dev_accuracy", "iteration")


class Screen:
    """Skip scoring the rows whose irreducible loss (raw, in nats) is above `high`, and,
    once the best dev accuracy reached `after`, those below `low`; keep the K largest
    reducible losses among the rest (`keep_all`: every row that passed, NoTeach on the
    screened stream)."""

    columns = COLUMNS  # checked against the run's features before it starts

    def __init__(self, high: float = math.inf, low: float = 0.0, after: float = 0.0,
                 keep_all: bool = False) -> None:
        self.high, self.low, self.after, self.keep_all = high, low, after, keep_all
        self.last_iteration = math.inf
        self.episodes: list[dict[str, float]] = []

    def act(self, obs: np.ndarray, info) -> np.ndarray:
        c = _at(tuple(info["feature_names"]))
        iteration = float(obs[0, c["iteration"]])
        if iteration < self.last_iteration:  # a new episode
            self.episodes.append({"skipped": 0, "rows": 0})
        self.last_iteration = iteration
        il = obs[:, c["irreducible_loss"]] * LOSS_SCALE
        scored = il <= self.high
        if obs[0, c["best_dev_accuracy"]] >= self.after:
            scored &= il >= self.low
        episode = self.episodes[-1]
        episode["skipped"] += int((~scored).sum())
        episode["rows"] += obs.shape[0]
        episode["scoring"] = info["compute"]["scoring"]
        if self.keep_all:
            return scored
        reducible = np.where(scored, obs[:, c["loss"]] - obs[:, c["irreducible_loss"]], -np.inf)
        mask = np.zeros(obs.shape[0], dtype=bool)
        mask[np.argsort(-reducible, kind="stable")[:K]] = True
        return mask & scored


TEACHERS = {
    "rho6": lambda: Screen(),
    "hi2": lambda: Screen(high=2.0),
    "hi1": lambda: Screen(high=1.0),
    "hi05": lambda: Screen(high=0.5),
    "lo3_80": lambda: Screen(low=1e-3, after=0.80),
    "lo2_80": lambda: Screen(low=1e-2, after=0.80),
    "lo3_83": lambda: Screen(low=1e-3, after=0.83),
    "lo3hi1_80": lambda: Screen(high=1.0, low=1e-3, after=0.80),
    "nt_hi1": lambda: Screen(high=1.0, keep_all=True),
    "nt": lambda: Screen(keep_all=True),
}


def main(argv: list[str]) -> None:
    names, out = argv[0].split(","), Path(argv[1])
    first = int(argv[2]) if len(argv) > 2 else 0
    teachers = {name: TEACHERS[name]() for name in names}
    l2t.compare("fashion-mnist-mlp", teachers, builtin=["rho_loss_compute"], seeds=20,
                first_seed=first, workers=1, plots=False, out=out)
    counts = {name: t.episodes for name, t in teachers.items()}
    (out / "screen.json").write_text(json.dumps(counts, indent=1))
    print(table([out], "rho6" if "rho6" in names else names[0]))


def episodes(folders: list[Path]) -> dict[str, dict[int, dict[str, float]]]:
    """teacher -> seed -> {instances, gflop (as run), screened gflop}, each episode's
    screened-out rows matched to it in order and checked against its scoring compute."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for folder in folders:
        report = json.loads((folder / "report.json").read_text())
        screen_file = folder / "screen.json"
        counts = json.loads(screen_file.read_text()) if screen_file.exists() else {}
        by_teacher: dict[str, list] = {}
        for e in report["evaluations"]:
            by_teacher.setdefault(e["teacher"], []).append(e)
        for teacher, evals in by_teacher.items():
            if teacher in out:
                continue
            rows = counts.get(teacher)
            if rows is not None and len(rows) != len(evals):
                raise ValueError(f"{folder}: {teacher} has {len(rows)} counted episodes "
                                 f"for {len(evals)} evaluations")
            per_seed = {}
            for i, e in enumerate(evals):
                ep = e["episode"]
                if ep.get("compute_to_tau") is None:
                    continue
                scoring = ep["compute"]["scoring"]
                skipped = 0
                if rows is not None:
                    # The env scores the next incoming batch after the last step the
                    # teacher answered, so the report counts one batch more.
                    per_batch = scoring / (ep["instances_seen"] / 20)
                    if not 0 <= scoring - rows[i]["scoring"] <= per_batch * 1.0001:
                        raise ValueError(f"{folder}: {teacher} seed {e['seed']}: counted "
                                         f"scoring {rows[i]['scoring']} against {scoring}")
                    skipped = rows[i]["skipped"]
                per_row = scoring / ep["instances_seen"]
                gflop = ep["compute_to_tau"] / 1e9
                per_seed[e["seed"]] = {
                    "instances": ep["effective_instances_to_tau"],
                    "gflop": gflop,
                    "screened": gflop - skipped * per_row / 1e9,
                    "skipped_share": skipped / ep["instances_seen"],
                }
            out[teacher] = per_seed
    return out


def interval(x: np.ndarray) -> str:
    """Mean ± the 95% t-interval's half-width."""
    mean, half = mean_ci([float(v) for v in x])
    return f"{mean:.1f} ± {half:.1f}"


def table(folders: list[Path], ref: str) -> str:
    eps = episodes(folders)
    base = eps[ref]
    lines = ["| teacher | reach tau | instances to tau | GFLOP to tau, as run | GFLOP to tau, screened "
             f"| screened-out share of rows | screened minus {ref}, GFLOP (paired) | fewer on |",
             "|---|---|---|---|---|---|---|---|"]
    for teacher, per_seed in eps.items():
        seeds = sorted(per_seed)
        get = lambda k: np.array([per_seed[s][k] for s in seeds])  # noqa: E731
        common = [s for s in seeds if s in base]
        diff = np.array([per_seed[s]["screened"] - base[s]["screened"] for s in common])
        paired = interval(diff) if teacher != ref else ""
        fewer = f"{int((diff < 0).sum())}/{len(diff)}" if teacher != ref else ""
        lines.append(f"| {teacher} | {len(seeds)} | {get('instances').mean():.0f} | "
                     f"{interval(get('gflop'))} | {interval(get('screened'))} | "
                     f"{get('skipped_share').mean():.2f} | {paired} | {fewer} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        print(table([Path(f) for f in sys.argv[2].split(",")], sys.argv[4]))
    else:
        main(sys.argv[1:])
