#!/usr/bin/env python3
"""Per-seed tables and paired intervals for the text-task runs (stdlib only).

Usage:
  paired.py RUN[:LABEL[=NAME]] ... [--ref NAME] [--vs A,B ...] [--level L]

Each RUN is a run folder (its report.json, or the evaluation events of events.jsonl
while it has none); LABEL picks one teacher of it (default: all
of them), NAME renames it in the output (needed when two folders both have no_teach).
Prints, per teacher: seeds reached tau, mean effective instances to tau over the seeds
(a seed that did not reach tau counts as the budget T' * M, as in the run's summary.md;
the mean over the seeds that reached it alone follows), the 95% t-interval (half-width),
the half-width as % of the mean; then
paired differences (A minus B, per seed, over the seeds where both reached tau) for
--ref (every teacher minus it) and for each --vs A,B. With --level L (at most the run's
tau), instances to tau are replaced by the effective instances at the first dev
evaluation of the recorded curve with dev accuracy >= L (what a lower tau would give).
With --compute, training GFLOP to tau (the episodes' compute_to_tau) replace
effective instances to tau everywhere (a seed that did not reach tau counts its whole
training compute).
"""
import json
import math
import sys

# two-sided 95% t quantiles t_{0.975, df}
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
        16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074,
        23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045,
        30: 2.042, 39: 2.023, 40: 2.021, 49: 2.010, 59: 2.001, 99: 1.984}


def t975(df):
    if df in T975:
        return T975[df]
    keys = sorted(k for k in T975 if k <= df)
    return T975[keys[-1]] if keys else float("nan")


def mean_ci(xs):
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan")
    m = sum(xs) / n
    if n == 1:
        return m, 0.0
    var = sum((x - m) ** 2 for x in xs) / (n - 1)
    return m, t975(n - 1) * math.sqrt(var / n)


LEVEL = None
COMPUTE = False


def to_level(e):
    if COMPUTE:
        c = e["compute_to_tau"]
        return None if c is None else c / 1e9
    if LEVEL is None:
        return e["effective_instances_to_tau"]
    for point in e["curve"]:
        if point["dev_accuracy"] >= LEVEL - 1e-9:
            return point["effective_instances"]
    return None


def load(spec):
    run, _, pick = spec.partition(":")
    label, _, name = pick.partition("=")
    try:
        evaluations = json.load(open(f"{run}/report.json"))["evaluations"]
    except FileNotFoundError:  # a run still going (or stopped): its per-episode events
        evaluations = [json.loads(line) for line in open(f"{run}/events.jsonl")]
        evaluations = [e for e in evaluations if e.get("event") == "evaluation"]
    teaching = json.load(open(f"{run}/manifest.json"))["config"]["preset"]["teaching"]
    budget = teaching["max_iterations"] * teaching["batch_size"]
    out = {}
    for ev in evaluations:
        if label and ev["teacher"] != label:
            continue
        key = name or ev["teacher"]
        e = ev["episode"]
        out.setdefault(key, {})[ev["seed"]] = {
            "eff": to_level(e),
            "test": ev["test_accuracy"],
            "kept": e["instances_kept"] / max(e["instances_seen"], 1),
            "secs": e["wall_seconds"],
            "budget": e["compute"]["scoring"] / 1e9 + e["compute"]["training"] / 1e9
            if COMPUTE else budget,
        }
    return out


def main(argv):
    global LEVEL, COMPUTE
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    ref, vs, specs = None, [], []
    it = iter(argv)
    for a in it:
        if a == "--level":
            LEVEL = float(next(it))
        elif a == "--compute":
            COMPUTE = True
        elif a == "--ref":
            ref = next(it)
        elif a == "--vs":
            vs.append(tuple(next(it).split(",")))
        else:
            specs.append(a)
    data = {}
    for s in specs:
        data.update(load(s))
    what, digits = ("training GFLOP", 1) if COMPUTE else ("effective instances", 0)
    if COMPUTE and LEVEL is not None:
        raise SystemExit("--compute reads compute_to_tau: it takes no --level")
    print(f"| teacher | reached tau | {what} to tau (mean ± 95% CI) | CI as % of mean "
          "| mean over the seeds that reached tau | test accuracy at end | kept ratio "
          "| s / episode |")
    print("|---|---|---|---|---|---|---|---|")
    for k, seeds in data.items():
        reached = [v["eff"] for v in seeds.values() if v["eff"] is not None]
        m, h = mean_ci([v["budget"] if v["eff"] is None else v["eff"] for v in seeds.values()])
        mr, hr = mean_ci(reached)
        tm, th = mean_ci([v["test"] for v in seeds.values()])
        kept = sum(v["kept"] for v in seeds.values()) / len(seeds)
        secs = sum(v["secs"] for v in seeds.values()) / len(seeds)
        pct = 100 * h / m if m else float("nan")
        print(f"| {k} | {len(reached)}/{len(seeds)} | {m:.{digits}f} ± {h:.{digits}f} | ±{pct:.0f}% "
              f"| {mr:.{digits}f} ± {hr:.{digits}f} | {tm:.4f} ± {th:.4f} | {kept:.3f} | {secs:.1f} |")
    pairs = [(k, ref) for k in data if ref and k != ref] + vs
    if pairs:
        print()
        print("| A minus B | seeds (both reached) | paired difference (mean ± 95% t-interval) "
              "| A / B (ratio of means) | A fewer on |")
        print("|---|---|---|---|---|")
    for a, b in pairs:
        da, db = data[a], data[b]
        common = sorted(s for s in da if s in db and da[s]["eff"] is not None
                        and db[s]["eff"] is not None)
        if not common:
            print(f"| {a} - {b} | 0 | no seed where both reached tau | | |")
            continue
        diffs = [da[s]["eff"] - db[s]["eff"] for s in common]
        m, h = mean_ci(diffs)
        ma = sum(da[s]["eff"] for s in common) / max(len(common), 1)
        mb = sum(db[s]["eff"] for s in common) / max(len(common), 1)
        fewer = sum(1 for d in diffs if d < 0)
        print(f"| {a} - {b} | {len(common)} | {m:+.{digits}f} ± {h:.{digits}f} | {100 * ma / mb:.0f}% "
              f"| {fewer}/{len(common)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
