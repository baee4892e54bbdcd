"""The KV cache's buffer: zeros, with every whole 2 MiB page inside it advised for huge
pages (and nothing outside it), its whole pages zeroed by the kernel, not written."""

from __future__ import annotations

import torch

from fw.engine import huge_pages


class RecordingLibc:
    def __init__(self):
        self.calls: list[tuple[int, int, int]] = []

    def madvise(self, start, length, advice) -> int:
        self.calls.append((start.value, length.value, advice))
        return 0


def test_advises_exactly_the_whole_huge_pages_inside(monkeypatch):
    libc = RecordingLibc()
    monkeypatch.setattr(huge_pages, "libc_or_none", lambda: libc)
    tensor = huge_pages.zeros(2, 3 << 20, dtype=torch.bfloat16)  # 12 MiB
    assert tensor.shape == (2, 3 << 20) and tensor.dtype == torch.bfloat16
    [(start, length, advice)] = [call for call in libc.calls if call[2] == huge_pages.MADV_HUGEPAGE]
    begin, end = tensor.data_ptr(), tensor.data_ptr() + tensor.numel() * tensor.element_size()
    assert advice == huge_pages.MADV_HUGEPAGE
    assert start % huge_pages.HUGE_PAGE == 0 and length % huge_pages.HUGE_PAGE == 0
    assert begin <= start and start + length <= end
    assert start - begin < huge_pages.HUGE_PAGE and end - (start + length) < huge_pages.HUGE_PAGE


def test_small_buffers_and_other_systems_get_plain_zeros(monkeypatch):
    libc = RecordingLibc()
    monkeypatch.setattr(huge_pages, "libc_or_none", lambda: libc)
    assert not huge_pages.zeros(1000, dtype=torch.float32).any()
    assert [c for c in libc.calls if c[2] == huge_pages.MADV_HUGEPAGE] == []  # no whole huge page inside
    monkeypatch.setattr(huge_pages, "libc_or_none", lambda: None)
    assert not huge_pages.zeros(3 << 20, dtype=torch.uint8).any()


def test_nothing_is_written_up_front():
    # A 1 GiB cache costs no memory until requests write into it, and reads as zeros.
    def resident() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096

    if huge_pages.libc_or_none() is None:
        return
    dirty = torch.ones(3, 1 << 20, dtype=torch.float32)  # memory a reused allocation may get back
    del dirty
    assert not huge_pages.zeros(3, 1 << 20, dtype=torch.float32).any()
    before = resident()
    tensor = huge_pages.zeros(2, 256, 1 << 20, dtype=torch.bfloat16)
    assert resident() - before < 64 << 20
    tensor[1, 255, -1] = 3
    assert tensor[0, :4].sum() == 0 and tensor[1, 255, -1] == 3 and tensor.shape == (2, 256, 1 << 20)
