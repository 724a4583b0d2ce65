"""Per-config table of `run.sh`: effective instances to tau over 20 seeds, the share of
NoTeach's, the same over seeds 5-19 (the seeds the main job does not use), and paired
per-seed differences to the config each one changes (PARENT) and to online batch
selection.
95% intervals use Student's t with 19 degrees of freedom (2.093)."""

import json
import statistics
import sys
from typing import Dict, List

T_19 = 2.093

# What each config changes, and from which config.
PARENT = {
    "ev20": ("base", "training episodes evaluated every 20 updates, not 10"),
    "gen": ("base", "common random numbers over the whole generation"),
    "lr25": ("ev20", "Adam learning rate 0.25, not 0.1"),
    "p1": ("ev20", "1 antithetic pair per generation, not 4"),
    "p2": ("ev20", "2 pairs per generation, not 4 (the main job)"),
    "p2-640": ("p2", "640 episodes, not 480"),
    "p2s25": ("p2", "sigma 0.25, not 0.5"),
    "h1000": ("p2", "area over H = 1000 updates, evaluated every 40, 320 episodes"),
}


def mean_ci(values: List[float], sign: str = "") -> str:
    half = T_19 * statistics.stdev(values) / len(values) ** 0.5
    return f"{statistics.mean(values):{sign}.0f} ± {half:.0f}"


def main(path: str) -> None:
    with open(path) as f:
        report = json.load(f)
    by: Dict[str, Dict[int, float]] = {}
    for record in report["evaluations"]:
        reached = record["episode"]["effective_instances_to_tau"]
        if reached is None:
            sys.exit(f"{record['teacher']} missed tau on seed {record['seed']}")
        by.setdefault(record["teacher"], {})[record["seed"]] = reached
    seeds = sorted(by["no_teach"])
    fresh = [s for s in seeds if s >= 5]
    no_teach = statistics.mean(by["no_teach"][s] for s in seeds)
    no_teach_fresh = statistics.mean(by["no_teach"][s] for s in fresh)
    print("| teacher | what it changes | instances to tau, 20 seeds | vs NoTeach "
          "| vs NoTeach, seeds 5-19 | paired difference to what it changes "
          "| paired difference to online_batch |")
    print("|---|---|---|---|---|---|---|")
    for teacher, runs in by.items():
        values = [runs[s] for s in seeds]
        share = statistics.mean(values) / no_teach
        share_fresh = statistics.mean(runs[s] for s in fresh) / no_teach_fresh
        cells = []
        parent, change = PARENT.get(teacher, ("", "-"))
        for reference in [parent, "online_batch"]:
            if reference not in by or reference == teacher or teacher == "no_teach":
                cells.append("-")
                continue
            d = [runs[s] - by[reference][s] for s in seeds]
            fewer = sum(x < 0 for x in d)
            cells.append(f"{mean_ci(d, '+')} (fewer on {fewer}/20)")
        name = f"{teacher} (from {parent})" if parent else teacher
        print(f"| {name} | {change} | {mean_ci(values)} | {share:.0%} | {share_fresh:.0%} | "
              f"{cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main(sys.argv[1])
