"""The abstract description of where the hooks go in a transformer, independent of any model class."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BlockListLayout", "ModelLayout"]


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
        timestep_arg: Name of the transformer's timestep argument.

    """

    block_lists: tuple[BlockListLayout, ...]
    timestep_arg: str = "timestep"
