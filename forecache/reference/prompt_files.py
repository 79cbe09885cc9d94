"""Prompt sets shipped as text files: reading one, and writing all of a family's from a seeded draw.

Each prompted reference family (scenes, motion) ships ``prompts/<set>.txt`` in its package, one
prompt a line. The files were written once by the family's ``write_prompt_sets`` and are read,
never regenerated, so the sets stay fixed whatever Python's random module does in later releases.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from pathlib import Path

__all__ = ["read_prompt_file", "write_prompt_files"]


def read_prompt_file(package: str, name: str, sets: Iterable[str]) -> list[str]:
    """Return the prompts of ``<package>/prompts/<name>.txt``, one per non-empty line.

    Args:
        package (`str`): The package holding the ``prompts`` folder.
        name (`str`): The set's name; one of `sets`.
        sets (`Iterable[str]`): The names the package ships.

    Raises:
        ValueError: `name` is not one of `sets`.

    """
    known = list(sets)
    if name not in known:
        raise ValueError(f"`prompts` must be one of {', '.join(known)}, got {name!r}")
    text = resources.files(package).joinpath(f"prompts/{name}.txt").read_text("utf-8")
    return [line for line in text.splitlines() if line]


def write_prompt_files(
    folder: str | Path,
    sizes: Mapping[str, int],
    seeds: Mapping[str, int],
    draw: Callable[[str, random.Random], str],
) -> None:
    """Write every set as ``<name>.txt`` into `folder`, in the order of `sizes`; no prompt twice.

    Each set draws from its own ``random.Random(seeds[name])``, skipping prompts an earlier set
    (or itself) already has, so later sets differ from earlier ones.

    Args:
        folder (`str` or `Path`): Where the files go.
        sizes (`Mapping[str, int]`): Each set's name and number of prompts.
        seeds (`Mapping[str, int]`): Each set's seed.
        draw (`Callable[[str, random.Random], str]`): ``draw(name, rng)`` returns one prompt of set `name`.

    """
    taken: set[str] = set()
    out = Path(folder)
    for name, size in sizes.items():
        rng = random.Random(seeds[name])
        chosen: list[str] = []
        while len(chosen) < size:
            text = draw(name, rng)
            if text not in taken:
                taken.add(text)
                chosen.append(text)
        (out / f"{name}.txt").write_text("\n".join(chosen) + "\n", encoding="utf-8")
