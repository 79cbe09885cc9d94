"""Targets: what is cached and forecast. Each owns its hooks and is registered by name (`register_target`)."""

from forecache.accel.targets.base import (
    TARGETS,
    Block,
    BlockRole,
    Engine,
    Register,
    Target,
    blocks_of,
    chains_blocks,
    register_target,
    runs_partial_steps,
)
from forecache.accel.targets.blocks import BlocksTarget
from forecache.accel.targets.modules import ModulesTarget
from forecache.accel.targets.output import OutputTarget

__all__ = [
    "TARGETS",
    "Block",
    "BlockRole",
    "BlocksTarget",
    "Engine",
    "ModulesTarget",
    "OutputTarget",
    "Register",
    "Target",
    "blocks_of",
    "chains_blocks",
    "register_target",
    "runs_partial_steps",
]
