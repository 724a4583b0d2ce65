"""Departures from RHO-LOSS's ranking that use each instance's history in the episode,
which no built-in heuristic sees: its loss at its previous visit and how often it was kept.
Fashion-MNIST (MLP students, tau = 0.86), keep one instance of each incoming batch of
M = 20, as Python teachers through `l2t.compare`. Selection seeds 0-19 only.

Usage (after `bash scripts/setup.sh`; `source .venv/bin/activate`):
  python studies/rho-headroom/history.py NAME[,NAME...] OUT_FOLDER

The instances are identified by `info["incoming_indices"]`; the state restarts with each
episode, so the run uses one worker.
"""
import sys

import numpy as np

from probe import _PerEpisode, cols, main, reducible, rho1, top


class History(_PerEpisode):
    """Reducible loss + delta x (loss now - loss at the previous visit), the change counted
    only where positive when `forgotten`, minus `repeat` x the times the instance was kept.
    An instance seen for the first time has a change of 0."""

    def __init__(self, delta: float, forgotten: bool = False, repeat: float = 0.0) -> None:
        super().__init__(delta)
        self.forgotten = forgotten
        self.repeat = repeat

    def act(self, obs, info):
        if self.new_episode(obs, info):
            self.last_loss: dict[int, float] = {}
            self.kept: dict[int, int] = {}
        ids = info["incoming_indices"]
        loss = obs[:, cols(info).loss]
        change = np.array([loss[r] - self.last_loss.get(i, loss[r]) for r, i in enumerate(ids)])
        if self.forgotten:
            change = np.maximum(change, 0.0)
        times = np.array([self.kept.get(i, 0) for i in ids], dtype=float)
        mask = top(reducible(obs, info) + self.weight * change - self.repeat * times, 1)
        for r, i in enumerate(ids):
            self.last_loss[i] = float(loss[r])
            if mask[r]:
                self.kept[i] = self.kept.get(i, 0) + 1
        return mask


TEACHERS = {
    "rho1": rho1,
    "delta1": History(1.0), "delta-1": History(-1.0),
    "forgot1": History(1.0, forgotten=True), "forgot3": History(3.0, forgotten=True),
    "repeat02": History(0.0, repeat=0.2), "repeat-02": History(0.0, repeat=-0.2),
    "repeat-005": History(0.0, repeat=-0.05),
}

if __name__ == "__main__":
    main(TEACHERS, sys.argv[1:])
