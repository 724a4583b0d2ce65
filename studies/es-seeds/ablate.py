"""The scores of trained ES checkpoints, replayed as Python teachers with parts of their
weights removed: which part of a learned score costs instances against RHO-LOSS?

Each checkpoint's linear score over standardised features (w . (s - mu) / sd, mu and sd
from the checkpoint's feature statistics) keeps the top instance of each incoming batch
(greedy; the checkpoint itself samples from softmax over the batch). Variants:
  full   every weight;
  core   only the loss, irreducible-loss and margin weights (the label and probability
         columns, which act as per-class preferences, set to 0);
  rho    only the loss and irreducible-loss weights.
Fashion-MNIST, MLP students, tau = 0.86, selection seeds 0-19.

Usage (after `bash scripts/setup.sh`; `source .venv/bin/activate`):
  python studies/es-seeds/ablate.py OUT_FOLDER NAME=CHECKPOINT [NAME=CHECKPOINT ...]
"""
import json
import struct
import sys

import numpy as np
import l2t

# The weights each variant keeps, by column name (None: every weight).
CORE = {"full": None, "core": ("irreducible_loss", "loss", "margin"),
        "rho": ("irreducible_loss", "loss")}


def read_checkpoint(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str] | None]:
    """The output weights of a linear ES checkpoint, its feature mean and sd, and the names
    of the feature columns it was trained on (None in a file of an earlier build, version
    3, which does not store them)."""
    with open(path, "rb") as f:
        raw = f.read()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + size])
    data = raw[8 + size:]
    start, end = header["weight/output.weight"]["data_offsets"]
    weight = np.frombuffer(data[start:end], dtype="<f4").astype(np.float64).ravel()
    state = json.loads(json.loads(header["__metadata__"]["l2t"])["state"])
    stats = json.loads(state["config_json"])[1]
    n = float(stats["count"])
    mean = np.array(stats["sum"]) / n
    sd = np.sqrt(np.maximum(np.array(stats["sum_sq"]) / n - mean**2, 0.0))
    names = state.get("feature_names")
    if names is not None and len(names) != weight.size:
        raise ValueError(f"{path}: {len(names)} feature names for {weight.size} weights")
    return weight, mean, np.maximum(sd, 0.01), names


class Ablated:
    """A checkpoint's score with the weights of the columns not in `keep` set to 0, keeping
    the top instance of each batch. The weights are matched to the run's columns by name:
    `bind` (called with the run's `feature_names` before the first `act`) finds the
    checkpoint's columns in the run's layout; a checkpoint without names is taken to have
    been trained on the run's columns."""

    def __init__(self, weight: np.ndarray, mean: np.ndarray, sd: np.ndarray,
                 trained: list[str] | None, keep: tuple[str, ...] | None) -> None:
        self.weight, self.mean, self.sd, self.trained, self.keep = weight, mean, sd, trained, keep
        # Checked by the run before it starts, where the checkpoint names its columns.
        self.columns = tuple(trained) if trained is not None else None

    def bind(self, feature_names: tuple[str, ...]) -> None:
        trained = list(self.trained) if self.trained is not None else list(feature_names)
        if len(trained) != self.weight.size:
            raise ValueError(f"the checkpoint has {self.weight.size} weights, the run "
                             f"{len(trained)} columns: {', '.join(trained)}")
        missing = [name for name in trained if name not in feature_names]
        if missing:
            raise ValueError(f"the run has no column {', '.join(missing)}")
        absent = [name for name in self.keep or () if name not in trained]
        if absent:
            raise ValueError(f"the checkpoint has no column {', '.join(absent)}")
        self.positions = [feature_names.index(name) for name in trained]
        self.w = np.array([w if self.keep is None or name in self.keep else 0.0
                           for w, name in zip(self.weight, trained)])

    def act(self, obs, info):
        score = ((obs[:, self.positions] - self.mean) / self.sd) @ self.w
        mask = np.zeros(obs.shape[0], dtype=bool)
        mask[int(np.argmax(score))] = True
        return mask


if __name__ == "__main__":
    out, teachers = sys.argv[1], {}
    for arg in sys.argv[2:]:
        name, path = arg.split("=", 1)
        weight, mean, sd, trained = read_checkpoint(path)
        for variant, keep in CORE.items():
            teachers[f"{name}-{variant}"] = Ablated(weight, mean, sd, trained, keep)
    run = l2t.compare("fashion-mnist-mlp", teachers, builtin=["rho_loss"], seeds=20,
                      first_seed=0, workers=2, plots=False, out=out)
    print(run.summary)
