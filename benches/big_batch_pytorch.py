"""RHO-LOSS's own training loop in plain PyTorch, for `cargo bench --bench step_time -- selective`.

Per update: score a big batch of n_b = M / kappa rows in one forward without gradient,
subtract the (precomputed) irreducible losses, and train on the top M rows: a forward,
a backward and one Adam step (Mindermann et al. 2022, Algorithm 1). The student is the
Fashion-MNIST MLP 784-500-10 on random data of Fashion-MNIST's shape (the time does not
depend on the values), on one thread. Prints one JSON object: milliseconds per update.

    python benches/big_batch_pytorch.py --updates 200 --warmup 50 --big 400 --keep 20
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--big", type=int, default=400, help="n_b, rows scored per update")
    parser.add_argument("--keep", type=int, default=20, help="M, rows trained on per update")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(args.seed)
    n = 30_000
    inputs = torch.randn(n, 784, generator=generator)
    labels = torch.randint(10, (n,), generator=generator)
    irreducible = torch.rand(n, generator=generator)
    model = torch.nn.Sequential(torch.nn.Linear(784, 500), torch.nn.ReLU(), torch.nn.Linear(500, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(n, generator=generator)
    cursor = 0

    def update() -> None:
        nonlocal cursor, order
        if cursor + args.big > n:
            order = torch.randperm(n, generator=generator)
            cursor = 0
        index = order[cursor : cursor + args.big]
        cursor += args.big
        x, y = inputs[index], labels[index]
        with torch.no_grad():
            reducible = F.cross_entropy(model(x), y, reduction="none") - irreducible[index]
        top = reducible.topk(args.keep).indices
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[top]), y[top]).backward()
        optimizer.step()

    for _ in range(args.warmup):
        update()
    samples = []
    for _ in range(args.updates):
        start = time.perf_counter()
        update()
        samples.append((time.perf_counter() - start) * 1e3)
    print(json.dumps({"ms_per_update": samples, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
