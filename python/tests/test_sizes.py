"""Sizes that cannot fit are refused before they allocate, as in the ``l2t`` command."""

from __future__ import annotations

import pytest

import l2t


def test_a_batch_larger_than_the_training_split_is_refused() -> None:
    with pytest.raises(ValueError, match=r"batch_size.*larger than the training split"):
        l2t.TeachingEnv("synthetic", teaching={"batch_size": 100_000_000})


def test_a_batch_the_size_of_the_split_is_still_accepted() -> None:
    env = l2t.TeachingEnv("synthetic", teaching={"batch_size": 3000, "max_iterations": 1})
    obs, _ = env.reset(seed=0)
    assert obs.shape[0] == 3000
    env.close()
