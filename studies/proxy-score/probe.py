#!/usr/bin/env python3
"""Would a cheaper scoring forward pay? RHO-LOSS for compute with a proxy score, in PyTorch.

A selective teacher pays one student forward per incoming row to score it. This probe
scores with a cheap proxy that shares the student's weights instead: the input average-
pooled k x k, and the first layer's weights summed over the same blocks, so that
W1 x ~ W1' x' (W1' = sum of W1's columns in a block, x' = the block's mean). The proxy's
first layer costs 1/k^2 of the full one. The price: a kept row's training step can no
longer reuse the scoring forward, so it pays a full forward and its backward.

Plain PyTorch, outside l2t's env (the env always scores with the full student), on the
same task shape as `fashion-mnist-mlp`: Fashion-MNIST, MLP 784-500-10, Adam lr 1e-3,
M = 20 rows per update, dev accuracy 0.85 and 0.86 (tau) on a dev set of 1500 rows
evaluated every 10 updates,
RHO-LOSS's big batch of P = 4 incoming batches (80 rows) with the kept share of the
compute-tuned setting (kappa = 0.3). The irreducible loss comes from a holdout student
trained for 6000 updates on the other half of the training pool.

Compute is counted as l2t counts it (envs/src/student/mod.rs): a forward 2 FLOPs per
multiply-add plus the biases, a backward twice the forward, Adam 12 FLOPs per parameter
per step; dev evaluation and the holdout student are excluded. The full-score teacher is
charged as if every kept row reused its scoring forward (only the backward), which favours
it; a proxy-score teacher pays the proxy forward per scored row, a full forward and a
backward per kept row, and the block sums of W1 once per update.

    python studies/proxy-score/probe.py --seeds 0-9 --out target/proxy-a.jsonl &
    python studies/proxy-score/probe.py --seeds 10-19 --out target/proxy-b.jsonl
    python studies/proxy-score/probe.py --table target/proxy-a.jsonl target/proxy-b.jsonl
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "text-task"))
from paired import mean_ci  # noqa: E402  (the studies' one t-interval)

HIDDEN, CLASSES, PIXELS = 500, 10, 784
M, P, BATCH = 20, 4, 20
LEVELS, EVAL_EVERY, DEV_ROWS = (0.85, 0.86), 10, 1500
MAX_UPDATES = 4000


def linear_flops(inputs: int, outputs: int) -> int:
    return 2 * inputs * outputs + outputs


FORWARD = linear_flops(PIXELS, HIDDEN) + linear_flops(HIDDEN, CLASSES)
PARAMETERS = PIXELS * HIDDEN + HIDDEN + HIDDEN * CLASSES + CLASSES
ADAM_STEP = 12 * PARAMETERS
PROXY_FORWARD = {k: linear_flops(PIXELS // (k * k), HIDDEN) + linear_flops(HIDDEN, CLASSES) for k in (2, 4)}


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir: Path):
    x = read_idx(data_dir / "train-images-idx3-ubyte.gz").reshape(-1, PIXELS)
    y = read_idx(data_dir / "train-labels-idx1-ubyte.gz").astype(np.int64)
    x = x.astype(np.float32) / 255.0
    order = np.random.default_rng(12345).permutation(len(x))
    dev, pool = order[:DEV_ROWS], order[DEV_ROWS:]
    half = len(pool) // 2
    stream, holdout = pool[:half], pool[half:]
    mean, std = x[stream].mean(), x[stream].std()
    x = (x - mean) / std
    t = lambda idx: (torch.from_numpy(x[idx]), torch.from_numpy(y[idx]))  # noqa: E731
    return t(stream), t(holdout), t(dev)


def mlp(seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(PIXELS, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES)
    )


def irreducible(holdout, stream, cache: Path) -> torch.Tensor:
    """The holdout student's loss on each stream row (6000 updates of 20 on the holdout)."""
    if cache.exists():
        return torch.from_numpy(np.load(cache))
    model = mlp(777)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(777)
    x, y = holdout
    for _ in range(6000):
        idx = torch.from_numpy(rng.integers(0, len(x), BATCH))
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    with torch.no_grad():
        il = F.cross_entropy(model(stream[0]), stream[1], reduction="none")
    np.save(cache, il.numpy())
    return il


def proxy_logits(model, x: torch.Tensor, k: int, w1p: torch.Tensor) -> torch.Tensor:
    lin1, _, lin2 = model
    xp = F.avg_pool2d(x.view(-1, 1, 28, 28), k).flatten(1)
    return lin2(torch.relu(xp @ w1p.T + lin1.bias))


def pooled_weights(model, k: int) -> torch.Tensor:
    w = model[0].weight.view(HIDDEN, 1, 28, 28)
    return (F.avg_pool2d(w, k) * k * k).flatten(1)


def run(policy: str, seed: int, stream, il, dev) -> dict:
    """One student from `seed` until dev accuracy passes the last of LEVELS.

    policy: `no_teach`, `full@s` (RHO-LOSS: keep the share s of each big batch of P
    incoming batches with the largest reducible loss, scored by the student) or
    `proxy{k}@s` (the same, scored by the k x k proxy)."""
    name, _, share = policy.partition("@")
    keep = round(float(share) * P * BATCH) if share else 0
    k = int(name[5:]) if name.startswith("proxy") else 0
    model = mlp(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    x, y = stream
    dx, dy = dev
    order, cursor = rng.permutation(len(x)), 0
    flops, instances, updates = 0, 0, 0
    overlap: list[float] = []
    buffer: list[int] = []
    w1p, w1p_at = None, -1
    crossed: dict[str, dict] = {}

    def incoming(rows: int) -> torch.Tensor:
        nonlocal order, cursor
        if cursor + rows > len(order):
            order, cursor = rng.permutation(len(x)), 0
        idx = order[cursor : cursor + rows]
        cursor += rows
        return torch.from_numpy(idx)

    while updates < MAX_UPDATES and len(crossed) < len(LEVELS):
        if name == "no_teach":
            batch = incoming(BATCH)
            buffer.extend(batch.tolist())
            flops += FORWARD * BATCH  # the scoring forward, reused by the update
        else:
            batch = incoming(P * BATCH)
            with torch.no_grad():
                full = F.cross_entropy(model(x[batch]), y[batch], reduction="none") - il[batch]
                if k:
                    if w1p_at != updates:
                        w1p, w1p_at = pooled_weights(model, k), updates
                        flops += PIXELS * HIDDEN  # the block sums of W1, once per update
                    logits = proxy_logits(model, x[batch], k, w1p)
                    score = F.cross_entropy(logits, y[batch], reduction="none") - il[batch]
                    flops += PROXY_FORWARD[k] * len(batch)
                else:
                    score = full
                    flops += FORWARD * len(batch)
            top = score.topk(keep).indices
            if k:  # diagnostic only, not charged: how many of the full score's top rows
                best = set(full.topk(keep).indices.tolist())
                overlap.append(len(best & set(top.tolist())) / keep)
            buffer.extend(batch[top].tolist())
        while len(buffer) >= M:
            rows, buffer = torch.tensor(buffer[:M]), buffer[M:]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[rows]), y[rows]).backward()
            opt.step()
            updates += 1
            instances += M
            # a backward per row; a proxy-scored row pays its full forward too
            flops += (2 * FORWARD + (FORWARD if k else 0)) * M + ADAM_STEP
            if updates % EVAL_EVERY == 0:
                with torch.no_grad():
                    acc = (model(dx).argmax(1) == dy).float().mean().item()
                for level in LEVELS:
                    if acc >= level and str(level) not in crossed:
                        crossed[str(level)] = dict(gflop=flops / 1e9, instances=instances)
    return dict(policy=policy, seed=seed, updates=updates, crossed=crossed,
                final=dict(gflop=flops / 1e9, instances=instances),
                overlap=float(np.mean(overlap)) if overlap else None)


def seeds_of(spec: str) -> list[int]:
    out = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def table(results: list[dict], level: str, ref: str) -> None:
    """Per policy: seeds that crossed, instances and GFLOP at the crossing (a seed that
    never crossed counts at MAX_UPDATES), paired GFLOP against `ref`."""
    by: dict[str, dict[int, dict]] = {}
    for r in results:
        by.setdefault(r["policy"], {})[r["seed"]] = r
    print(f"\n**Dev accuracy {level}** (mean ± 95% t half-width over the seeds; paired against {ref})\n")
    print("| policy | crossed | instances | GFLOP | minus " + ref + ", GFLOP (paired) | top-k overlap with the full score |")
    print("|---|---|---|---|---|---|")

    def at(r: dict, what: str) -> float:
        c = r["crossed"].get(level)
        if c is not None:
            return c[what]
        return r["final"][what]

    for policy, rs in by.items():
        seeds = sorted(rs)
        inst = mean_ci([at(rs[s], "instances") for s in seeds])
        gf = mean_ci([at(rs[s], "gflop") for s in seeds])
        diff = ""
        if policy != ref and ref in by:
            common = [s for s in seeds if s in by[ref]]
            d = mean_ci([at(rs[s], "gflop") - at(by[ref][s], "gflop") for s in common])
            diff = f"{d[0]:+.1f} ± {d[1]:.1f}"
        ov = [rs[s]["overlap"] for s in seeds if rs[s]["overlap"] is not None]
        crossed = sum(level in rs[s]["crossed"] for s in seeds)
        print(f"| {policy} | {crossed}/{len(seeds)} | {inst[0]:.0f} ± {inst[1]:.0f} | "
              f"{gf[0]:.1f} ± {gf[1]:.1f} | {diff} | {f'{np.mean(ov):.2f}' if ov else ''} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-19", help="selection seeds, e.g. 0-19")
    parser.add_argument("--policies", default="no_teach,full@0.3,full@0.2,proxy2@0.3,proxy2@0.2,proxy2@0.1")
    parser.add_argument("--data", default=os.path.expanduser("~/.cache/l2t/data/fashion-mnist"))
    parser.add_argument("--cache", default="target/proxy-score-il.npy", help="the irreducible losses, computed once")
    parser.add_argument("--out", help="append each run as a JSON line to this file")
    parser.add_argument("--table", nargs="+", metavar="JSONL", help="print the tables of these files and stop")
    parser.add_argument("--ref", default="full@0.3")
    args = parser.parse_args()
    if args.table:
        results = [json.loads(line) for f in args.table for line in open(f) if line.strip()]
        for level in LEVELS:
            table(results, str(level), args.ref)
        return
    torch.set_num_threads(1)
    stream, holdout, dev = load(Path(args.data))
    il = irreducible(holdout, stream, Path(args.cache))
    for policy in args.policies.split(","):
        for seed in seeds_of(args.seeds):
            r = run(policy, seed, stream, il, dev)
            line = json.dumps(r)
            print(line, flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(line + "\n")


if __name__ == "__main__":
    main()
