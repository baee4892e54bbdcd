"""``--load-format dummy``: the model's config and tokenizer, but random weights.

For profiling and for testing start-up without reading gigabytes: the engine builds the
model from the folder's config.json and keeps its random initialisation. Never picked by
``--load-format auto``: random output must be asked for by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from fw.model_loader.base import WeightLoader

if TYPE_CHECKING:
    import torch


class DummyLoader(WeightLoader):
    name = "dummy"
    random_init = True

    def iter_weights(self) -> Iterator[tuple[str, "torch.Tensor"]]:
        return iter(())
