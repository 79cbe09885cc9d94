"""The abstract description of where the hooks go in a transformer, independent of any model class."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BlockListLayout", "ModelLayout", "TimeArgument", "time_argument"]


@dataclass(frozen=True)
class BlockListLayout:
    """One list of transformer blocks (e.g. ``transformer_blocks``) and how its blocks talk.

    Attributes:
        attr: Attribute of the transformer holding the `torch.nn.ModuleList`.
        hidden_index: Position of the image stream in a block's tuple output; None when a block
            returns the image stream alone as a tensor.
        encoder_index: Position of the text stream in the tuple output; None when blocks do not
            return it (cross-attention models).
        modules: Sub-modules (dotted names relative to a block) whose outputs the ``"modules"``
            target caches: the attention and feed-forward parts. Names absent from a block are
            ignored; a block with none of them is an error at apply time.
        skipped_modules: Sub-modules whose outputs only feed cached ones (e.g. the attention and
            MLP input projection of a single-stream block whose output projection is cached);
            at forecast steps they return zeros of the recorded shape instead of computing.
        hidden_arg: Name of the block's image-stream argument.
        encoder_arg: Name of the block's text-stream argument.

    """

    attr: str
    hidden_index: int | None
    encoder_index: int | None
    modules: tuple[str, ...]
    skipped_modules: tuple[str, ...] = ()
    hidden_arg: str = "hidden_states"
    encoder_arg: str = "encoder_hidden_states"


@dataclass(frozen=True)
class ModelLayout:
    """Where to hook one transformer class: its block lists in execution order.

    Attributes:
        block_lists: The block lists, in the order the forward pass runs them.
        timestep_arg: Name of the transformer's time argument (``"timestep"``, ``"timesteps"``
            (HiDream), ``"t"`` (Z-Image), ...), names to try in order, or a `TimeArgument`.

    """

    block_lists: tuple[BlockListLayout, ...]
    timestep_arg: str | tuple[str, ...] | TimeArgument = "timestep"


@dataclass(frozen=True)
class TimeArgument:
    """Where a transformer takes its denoising time, and which way it runs.

    Attributes:
        names: Argument names to try in order; the first one passed is read.
        rises: The time the pipelines pass grows over a generation (``1 - t / 1000``, 0 = noise:
            Lumina 2, Z-Image, ...). It is then read negated, so that it falls as diffusers'
            schedulers' timesteps do: a scheduler's clock maps onto it with a positive scale, and a
            bare transformer's "time went back up = a new generation" rule holds. Forecasts do not
            change: divided differences and Lagrange weights are invariant under affine maps of time.

    """

    names: tuple[str, ...]
    rises: bool = False

    def __post_init__(self) -> None:
        if not self.names or not all(isinstance(n, str) and n for n in self.names):
            raise ValueError(f"TimeArgument: `names` must be non-empty argument names, got {self.names!r}")


def time_argument(value: str | tuple[str, ...] | TimeArgument) -> TimeArgument:
    """Return `ModelLayout.timestep_arg` as a `TimeArgument` (a name or names: a falling time)."""
    if isinstance(value, TimeArgument):
        return value
    return TimeArgument((value,) if isinstance(value, str) else tuple(value))
