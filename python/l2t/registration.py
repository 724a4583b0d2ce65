"""One Gymnasium id per preset, registered at ``import l2t``."""

from __future__ import annotations

import gymnasium

from . import _l2t

__all__ = ["ENV_IDS", "env_id", "register_envs"]


def env_id(preset: str) -> str:
    """The Gymnasium id of a preset: ``fashion-mnist-mlp`` -> ``l2t/FashionMnistMlp-v0``."""
    camel = "".join(part[:1].upper() + part[1:] for part in preset.split("-"))
    return f"l2t/{camel}-v0"


ENV_IDS: dict[str, str] = {preset: env_id(preset) for preset in _l2t.PRESETS}


def register_envs() -> None:
    """Registers every preset (``gymnasium.make`` and ``gymnasium.make_vec``)."""
    for preset, name in ENV_IDS.items():
        if name in gymnasium.registry:
            continue
        gymnasium.register(
            id=name,
            entry_point="l2t.env:TeachingEnv",
            vector_entry_point="l2t.vector:TeachingVectorEnv",
            kwargs={"preset": preset},
        )
