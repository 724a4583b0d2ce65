"""How much could a kept share that changes with training progress save over the best fixed one?

Reads a run folder's curves.csv (dev accuracy and training GFLOP at every evaluation of
every episode) and, for one family of teachers that differ only in their kept share (e.g.
RHO-LOSS at kappa 0.05 ... 0.5), splits training at dev-accuracy levels into phases. For
each phase it takes the mean over seeds of the compute each teacher spent between first
reaching the phase's lower level and first reaching its upper level. The best teacher of
each phase, summed over the phases, is what a share switched at those levels would need,
if the compute from one level to the next depended on the level alone and not on which
share brought the student there (the approximation this bound rests on). That sum, next to
the best fixed share's total, bounds what a progress-dependent share can gain.

The minimum over teachers in each phase is biased low: with many phases it picks the
luckiest teacher's noise. So the script also chooses out of sample, leaving one seed out:
the per-phase choice and the fixed choice are made on the other seeds' means, and both are
charged on the left-out seed. The paired difference over the left-out seeds is the figure
to read.

    python3 studies/compute-share/schedule_bound.py runs/compute-heuristics rho_loss_k \
        --levels 0.70 0.75 0.80 0.82 0.84 0.86
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path


def first_reach(points: list[tuple[float, float]], level: float) -> float | None:
    """Cost (GFLOP or instances) at the first evaluation whose dev accuracy is at least `level`."""
    for gflop, accuracy in points:
        if accuracy >= level:
            return gflop
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder holding curves.csv")
    parser.add_argument("prefix", help="label prefix of the teacher family, e.g. rho_loss_k")
    parser.add_argument("--levels", type=float, nargs="+", required=True)
    parser.add_argument(
        "--metric",
        choices=["training_gflop", "effective_instances"],
        default="training_gflop",
        help="the cost charged per phase (the same bound on the paper's axis with effective_instances)",
    )
    args = parser.parse_args()
    unit = "GFLOP" if args.metric == "training_gflop" else "instances"

    curves: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    with open(args.run / "curves.csv", newline="") as file:
        for row in csv.DictReader(file):
            if row["teacher"].startswith(args.prefix):
                curves[row["teacher"]][int(row["seed"])].append(
                    (float(row[args.metric]), float(row["dev_accuracy"]))
                )
    levels = [0.0] + sorted(args.levels)
    teachers = sorted(curves)
    seeds = sorted(set.intersection(*(set(curves[t]) for t in teachers)))
    # span[teacher][seed][k]: GFLOP from first reaching levels[k] to first reaching
    # levels[k+1] (inf where the episode never reached it).
    span: dict[str, dict[int, list[float]]] = {}
    for teacher in teachers:
        span[teacher] = {}
        for seed in seeds:
            points = curves[teacher][seed]
            row = []
            for low, high in zip(levels, levels[1:]):
                start = 0.0 if low == 0.0 else first_reach(points, low)
                end = first_reach(points, high)
                row.append(math.inf if start is None or end is None else max(end - start, 0.0))
            span[teacher][seed] = row

    def mean_cost(teacher: str, k: int, over: list[int]) -> float:
        return sum(span[teacher][s][k] for s in over) / len(over)

    phases = range(len(levels) - 1)
    # phase_cost[teacher][k]: mean over seeds of the GFLOP from levels[k] to levels[k+1].
    phase_cost = {t: [mean_cost(t, k, seeds) for k in phases] for t in teachers}

    print(f"{args.metric} per phase, mean over seeds ({args.run / 'curves.csv'}, teachers {args.prefix}*)\n")
    header = "| phase | " + " | ".join(teachers) + " | best |"
    print(header)
    print("|" + "---|" * (len(teachers) + 2))
    best_total = 0.0
    for k, (low, high) in enumerate(zip(levels, levels[1:])):
        row = [phase_cost[t][k] for t in teachers]
        best = min(range(len(teachers)), key=lambda i: row[i])
        best_total += row[best]
        cells = " | ".join(f"{c:.2f}" for c in row)
        print(f"| {low:.2f} to {high:.2f} | {cells} | {teachers[best]} |")
    totals = {t: sum(phase_cost[t]) for t in teachers}
    fixed = min(teachers, key=lambda t: totals[t])
    print(
        "| total | " + " | ".join(f"{totals[t]:.2f}" for t in teachers) + f" | {fixed} |"
    )
    print(
        f"\nIn sample: best fixed share {fixed}, {totals[fixed]:.2f} {unit} to {levels[-1]:.2f}; "
        f"best share per phase {best_total:.2f} {unit}, "
        f"{100 * (totals[fixed] - best_total) / totals[fixed]:.1f}% less."
    )

    # Out of sample: leave one seed out.
    differences = []
    for held in seeds:
        others = [s for s in seeds if s != held]
        per_phase = [min(teachers, key=lambda t: mean_cost(t, k, others)) for k in phases]
        fixed_choice = min(teachers, key=lambda t: sum(mean_cost(t, k, others) for k in phases))
        scheduled = sum(span[per_phase[k]][held][k] for k in phases)
        plain = sum(span[fixed_choice][held][k] for k in phases)
        differences.append(scheduled - plain)
        print(
            f"seed {held}: per phase {' '.join(per_phase)}: {scheduled:.2f}; "
            f"fixed {fixed_choice}: {plain:.2f}"
        )
    n = len(differences)
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1)) if n > 1 else math.nan
    print(
        f"\nLeave one seed out ({n} seeds): per-phase share minus fixed share "
        f"{mean:+.2f} {unit} (sd {sd:.2f}; negative: the schedule needs less)."
    )


if __name__ == "__main__":
    main()
