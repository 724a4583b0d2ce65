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
  python docs/es-seeds/ablate.py OUT_FOLDER NAME=CHECKPOINT [NAME=CHECKPOINT ...]
"""
import json
import struct
import sys

import numpy as np
import l2t

# The reproduction's columns: label_0..9, irreducible_loss, iteration,
# average_training_loss, best_dev_accuracy, prob_0..9, loss, margin.
IRR, LOSS, MARGIN = 10, 24, 25
CORE = {"full": None, "core": [IRR, LOSS, MARGIN], "rho": [IRR, LOSS]}


def read_checkpoint(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The output weights of a linear ES checkpoint and its feature mean and sd."""
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
    return weight, mean, np.maximum(sd, 0.01)


def teacher(weight: np.ndarray, mean: np.ndarray, sd: np.ndarray, keep: list[int] | None):
    w = weight.copy()
    if keep is not None:
        w[[k for k in range(w.size) if k not in keep]] = 0.0

    def act(obs, info):
        score = ((obs - mean) / sd) @ w
        mask = np.zeros(obs.shape[0], dtype=bool)
        mask[int(np.argmax(score))] = True
        return mask

    return act


if __name__ == "__main__":
    out, teachers = sys.argv[1], {}
    for arg in sys.argv[2:]:
        name, path = arg.split("=", 1)
        weight, mean, sd = read_checkpoint(path)
        if weight.size != 26:
            raise ValueError(f"{path}: expected the 26 weights of a linear ES, got {weight.size}")
        for variant, keep in CORE.items():
            teachers[f"{name}-{variant}"] = teacher(weight, mean, sd, keep)
    run = l2t.compare("fashion-mnist-mlp", teachers, builtin=["rho_loss"], seeds=20,
                      first_seed=0, workers=2, plots=False, out=out)
    print(run.summary)
