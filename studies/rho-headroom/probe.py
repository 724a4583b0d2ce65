"""Hand-written departures from RHO-LOSS's ranking on Fashion-MNIST (MLP students,
tau = 0.86, the main job's task with the irreducible-loss feature), as Python teachers
through `l2t.compare`: is there headroom over "keep the instance of largest reducible loss"
that a learned teacher could find? Selection seeds 0-19 only.

Usage (from the repository, after `bash scripts/setup.sh`; `source .venv/bin/activate`):
  python studies/rho-headroom/probe.py NAME[,NAME...] OUT_FOLDER

Every teacher keeps one instance of each incoming batch of M = 20 (RHO-LOSS's kept share,
kappa = 0.05). Stateful teachers (cls*, bal*) keep state across the steps of an episode,
so the run uses one worker: episodes run one after another.
"""
import functools
import sys
from types import SimpleNamespace

import numpy as np
import l2t

LATE = 0.83  # the dev accuracy after which RHO-LOSS spends 60% of its instances


@functools.cache
def columns(names: tuple[str, ...]) -> SimpleNamespace:
    """The positions of the columns the rules read, looked up by name in the run's layout
    (`info["feature_names"]`, which every Python teacher gets): the one-hot label columns
    `label_0`, `label_1`, ... in class order, `irreducible_loss` (the run needs
    `irreducible_loss_feature = true`), `iteration`, `best_dev_accuracy`, `loss` and
    `margin`."""

    def at(name: str) -> int:
        if name not in names:
            raise ValueError(f"the run's features have no column `{name}`: {', '.join(names)}")
        return names.index(name)

    classes = sum(1 for name in names if name.startswith("label_"))
    return SimpleNamespace(
        labels=[at(f"label_{c}") for c in range(classes)], irr=at("irreducible_loss"),
        iteration=at("iteration"), best=at("best_dev_accuracy"), loss=at("loss"),
        margin=at("margin"),
    )


def cols(info) -> SimpleNamespace:
    """The columns of the observation that came with `info`."""
    return columns(tuple(info["feature_names"]))


def top(score: np.ndarray, k: int) -> np.ndarray:
    mask = np.zeros(score.shape[0], dtype=bool)
    mask[np.argsort(-score, kind="stable")[:k]] = True
    return mask


def reducible(obs: np.ndarray, info) -> np.ndarray:
    c = cols(info)
    return obs[:, c.loss] - obs[:, c.irr]


def best(obs: np.ndarray, info) -> float:
    """The student's best dev accuracy so far (the same in every row)."""
    return float(obs[0, cols(info).best])


def rho1(obs, info):
    """RHO-LOSS on the feature columns: the largest reducible loss."""
    return top(reducible(obs, info), 1)


def late_loss(obs, info):
    """From dev accuracy 0.83 on, the largest training loss (irreducible loss ignored)."""
    return top(obs[:, cols(info).loss], 1) if best(obs, info) >= LATE else rho1(obs, info)


def late_k2(obs, info):
    """From 0.83 on, the two largest reducible losses."""
    return top(reducible(obs, info), 2 if best(obs, info) >= LATE else 1)


def late_margin(obs, info):
    """From 0.83 on, the smallest |margin| (the least certain instance)."""
    if best(obs, info) >= LATE:
        return top(-np.abs(obs[:, cols(info).margin]), 1)
    return rho1(obs, info)


def early_k2(obs, info):
    """Below dev accuracy 0.80, the two largest reducible losses."""
    return top(reducible(obs, info), 2 if best(obs, info) < 0.80 else 1)


def late_irr_low(obs, info):
    """From 0.83 on, loss - 2 x irreducible loss: clean, typical instances first."""
    if best(obs, info) >= LATE:
        c = cols(info)
        return top(obs[:, c.loss] - 2.0 * obs[:, c.irr], 1)
    return rho1(obs, info)


class _PerEpisode:
    """A weighted rule with state that restarts when the iteration column goes back (a
    new episode)."""

    def __init__(self, weight: float) -> None:
        self.weight = weight
        self.last_iteration = -1.0

    def new_episode(self, obs, info) -> bool:
        iteration = float(obs[0, cols(info).iteration])
        fresh = self.last_iteration < 0 or iteration < self.last_iteration
        self.last_iteration = iteration
        return fresh


class ClassWeighted(_PerEpisode):
    """Reducible loss + weight x the class's running mean reducible loss (an exponential
    average over the incoming instances of that class, rate 0.05 per batch)."""

    def act(self, obs, info):
        label_columns = cols(info).labels
        if self.new_episode(obs, info):
            self.class_mean = np.zeros(len(label_columns))
        labels = obs[:, label_columns].argmax(1)
        red = reducible(obs, info)
        for c in np.unique(labels):
            self.class_mean[c] += 0.05 * (red[labels == c].mean() - self.class_mean[c])
        return top(red + self.weight * self.class_mean[labels], 1)


class Balanced(_PerEpisode):
    """Reducible loss - weight x (the class's share of the instances kept so far - 1 / the
    number of classes)."""

    def act(self, obs, info):
        label_columns = cols(info).labels
        if self.new_episode(obs, info):
            self.kept = np.zeros(len(label_columns))
        labels = obs[:, label_columns].argmax(1)
        share = self.kept / max(self.kept.sum(), 1.0)
        uniform = 1.0 / len(label_columns)
        mask = top(reducible(obs, info) - self.weight * (share[labels] - uniform), 1)
        self.kept[labels[mask]] += 1
        return mask


TEACHERS = {
    "rho1": rho1, "late_loss": late_loss, "late_k2": late_k2, "late_margin": late_margin,
    "early_k2": early_k2, "late_irr_low": late_irr_low,
    "cls1": ClassWeighted(1.0), "cls3": ClassWeighted(3.0),
    "bal1": Balanced(1.0), "bal3": Balanced(3.0),
}


def main(teachers: dict, argv: list[str]) -> None:
    """Compare the teachers named by argv[0] (comma-separated) with the built-in RHO-LOSS on
    the selection seeds 0-19, into the run folder argv[1]."""
    names, out = argv[0].split(","), argv[1]
    run = l2t.compare("fashion-mnist-mlp", {name: teachers[name] for name in names},
                      builtin=["rho_loss"], seeds=20, first_seed=0, workers=1, plots=False,
                      out=out)
    print(run.summary)


if __name__ == "__main__":
    main(TEACHERS, sys.argv[1:])
