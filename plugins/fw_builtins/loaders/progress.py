"""The progress bar every built-in loader shows while it reads weights."""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], *, total: int, desc: str, enabled: bool) -> Iterator[T]:
    """``items`` unchanged, with a tqdm bar on stderr when ``enabled`` (--use-tqdm-on-load)."""
    if not enabled:
        yield from items
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit="tensor", dynamic_ncols=True) as bar:
        for item in items:
            yield item
            bar.update(1)
