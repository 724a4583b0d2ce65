#!/usr/bin/env python3
"""Per-seed effective instances to tau of every teacher of a run folder (report.json, or
events.jsonl while the run is going), each teacher's mean ± 95% t-interval and % of
NoTeach, and the paired difference of every learned teacher minus RHO-LOSS on the same
seeds (mean ± 95% t-interval, seeds where it needs fewer). A miss counts at the budget
T' x M, as in summary.md. Usage: python3 paired.py runs/es-tau-tau [reference-label] [-v: per-seed values]"""
import json
import math
import os
import sys

# t_{0.975, n-1}; the runs here have 20 seeds.
T975 = {19: 2.093, 18: 2.101, 17: 2.110, 16: 2.120, 15: 2.131, 14: 2.145, 13: 2.160,
        12: 2.179, 11: 2.201, 10: 2.228, 9: 2.262, 8: 2.306, 7: 2.365, 6: 2.447,
        5: 2.571, 4: 2.776, 3: 3.182, 2: 4.303, 1: 12.706}


def mean_ci(xs):
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, float("nan")
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, T975[n - 1] * sd / math.sqrt(n)


def load(folder):
    path = os.path.join(folder, "report.json")
    if os.path.exists(path):
        report = json.load(open(path))
        evaluations = report["evaluations"]
        preset = report["config"]["preset"]["teaching"]
    else:
        evaluations = [json.loads(l) for l in open(os.path.join(folder, "events.jsonl"))]
        evaluations = [e for e in evaluations if e.get("event") == "evaluation"]
        preset = None
    budget = (preset["max_iterations"] * preset["batch_size"]) if preset else 6000 * 20
    per = {}
    for e in evaluations:
        ep = e["episode"]
        inst = ep["effective_instances_to_tau"]
        kept = ep["instances_kept"] / ep["instances_seen"] if ep["instances_seen"] else 1.0
        per.setdefault(e["teacher"], {})[e["seed"]] = (
            inst if inst is not None else budget, inst is not None, kept)
    return per


def main():
    args = [a for a in sys.argv[1:] if a != "-v"]
    folder = args[0]
    reference = args[1] if len(args) > 1 else "rho_loss"
    per = load(folder)
    no_teach = None
    if "no_teach" in per:
        no_teach = mean_ci([v[0] for v in per["no_teach"].values()])[0]
    print(f"run: {folder}")
    print("| teacher | reached tau | effective instances to tau (mean ± 95% CI) | % of NoTeach "
          f"| kept ratio | paired minus {reference} (mean ± 95% CI) | seeds fewer |")
    print("|---|---|---|---|---|---|---|")
    for teacher, seeds in per.items():
        xs = [v[0] for v in seeds.values()]
        m, ci = mean_ci(xs)
        reached = sum(v[1] for v in seeds.values())
        kept = sum(v[2] for v in seeds.values()) / len(seeds)
        pct = f"{100 * m / no_teach:.0f}%" if no_teach else "-"
        paired, fewer = "", ""
        if teacher not in (reference, "no_teach") and reference in per:
            common = sorted(set(seeds) & set(per[reference]))
            d = [seeds[s][0] - per[reference][s][0] for s in common]
            dm, dci = mean_ci(d)
            lo, hi = dm - dci, dm + dci
            verdict = "fewer" if hi < 0 else ("more" if lo > 0 else "tie")
            paired = f"{dm:+.0f} ± {dci:.0f} [{lo:+.0f}, {hi:+.0f}] ({verdict}, {len(common)} seeds)"
            fewer = f"{sum(x < 0 for x in d)}/{len(d)} (ties {sum(x == 0 for x in d)})"
        print(f"| {teacher} | {reached}/{len(seeds)} | {m:.0f} ± {ci:.0f} | {pct} | {kept:.3f} "
              f"| {paired} | {fewer} |")
    if "-v" in sys.argv:
        for teacher, seeds in per.items():
            print(teacher, [seeds[s][0] for s in sorted(seeds)])


if __name__ == "__main__":
    main()
