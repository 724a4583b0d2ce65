"""Diversity within the kept rows (DivBS, JEST's joint selection), as hand-written Python
teachers on Fashion-MNIST (MLP students, tau = 0.86, the main job's task with the
irreducible-loss feature), counted in training compute: does keeping rows that differ from
each other beat keeping the largest reducible losses at the compute-tuned share?

Every rule keeps k = 6 of each incoming batch of M = 20 (30%, RHO-LOSS's share for
compute) by a greedy pass: each pick maximises the row's within-batch standardised
reducible loss minus w times its redundancy with the rows already picked.

Usage (from the repository, after `bash scripts/setup.sh`; `source .venv/bin/activate`):
  python studies/batch-diversity/probe.py NAME[,NAME...] OUT_FOLDER [FIRST_SEED]

Seeds FIRST_SEED to FIRST_SEED + 19 (default 0): selection seeds only, never the report
seeds. The rules are stateless, so two workers run the episodes.
"""
import functools
import sys
from typing import Callable

import numpy as np
import l2t

K = 6  # rows kept of each batch of M = 20


@functools.cache
def _at(names: tuple[str, ...]) -> dict[str, list[int] | int]:
    """The columns the rules read, by name in the run's layout (`info["feature_names"]`)."""

    def at(name: str) -> int:
        if name not in names:
            raise ValueError(f"the run's features have no column `{name}`: {', '.join(names)}")
        return names.index(name)

    classes = sum(1 for name in names if name.startswith("label_"))
    return {
        "labels": [at(f"label_{c}") for c in range(classes)],
        "probs": [at(f"prob_{c}") for c in range(classes)],
        "loss": at("loss"),
        "irr": at("irreducible_loss"),
    }


def standardised_reducible(obs: np.ndarray, info) -> np.ndarray:
    """Loss minus irreducible loss, standardised within the batch."""
    c = _at(tuple(info["feature_names"]))
    red = obs[:, c["loss"]] - obs[:, c["irr"]]
    return (red - red.mean()) / (red.std() + 1e-8)


def greedy(score: np.ndarray, redundancy: Callable[[int, list[int]], np.ndarray],
           weight: float) -> np.ndarray:
    """Keep K rows, one at a time: the row of largest score - weight x its redundancy with
    the rows kept so far."""
    mask = np.zeros(score.shape[0], dtype=bool)
    picked: list[int] = []
    for _ in range(K):
        gain = score - (weight * redundancy(len(picked), picked) if picked else 0.0)
        gain[mask] = -np.inf
        i = int(np.argmax(gain))
        mask[i] = True
        picked.append(i)
    return mask


def rho6(obs, info):
    """RHO-LOSS within the batch: the K largest reducible losses (no redundancy)."""
    return greedy(standardised_reducible(obs, info), lambda n, s: 0.0, 0.0)


def same_pair(weight: float):
    """Redundancy: how many kept rows share the row's (label, predicted class)."""

    def act(obs, info):
        c = _at(tuple(info["feature_names"]))
        key = obs[:, c["labels"]].argmax(1) * 1000 + obs[:, c["probs"]].argmax(1)
        return greedy(standardised_reducible(obs, info),
                      lambda n, s: (key[:, None] == key[s][None, :]).sum(1), weight)

    return act


def gradient_cosine(weight: float):
    """Redundancy: the largest cosine between the row's loss gradient at the logits,
    p - onehot(y), and a kept row's (DivBS's last-layer gradient embedding)."""

    def act(obs, info):
        c = _at(tuple(info["feature_names"]))
        g = obs[:, c["probs"]] - obs[:, c["labels"]]
        g = g / (np.linalg.norm(g, axis=1, keepdims=True) + 1e-8)
        return greedy(standardised_reducible(obs, info),
                      lambda n, s: (g @ g[s].T).max(1), weight)

    return act


TEACHERS = {
    "rho6": rho6,
    "pair05": same_pair(0.5), "pair1": same_pair(1.0), "pair2": same_pair(2.0),
    "gcos05": gradient_cosine(0.5), "gcos1": gradient_cosine(1.0), "gcos2": gradient_cosine(2.0),
}


def main(argv: list[str]) -> None:
    names, out = argv[0].split(","), argv[1]
    first = int(argv[2]) if len(argv) > 2 else 0
    run = l2t.compare("fashion-mnist-mlp", {name: TEACHERS[name] for name in names},
                      builtin=["rho_loss_compute"], seeds=20, first_seed=first, workers=2,
                      plots=False, out=out)
    print(run.summary)


if __name__ == "__main__":
    main(sys.argv[1:])
