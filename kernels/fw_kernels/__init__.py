"""fw_kernels: Triton kernels for paged attention, with torch reference twins.

Set ``TRITON_INTERPRET=1`` *before* importing this package to run the kernels on the CPU
(Triton decides at decoration time). ``fw_kernels.reference`` holds the plain-torch twins.
"""

from fw_kernels.common import INTERPRETED
from fw_kernels.decode import paged_attention_decode
from fw_kernels.prefill import paged_attention_prefill
from fw_kernels.kv_write import write_kv

__all__ = ["INTERPRETED", "paged_attention_decode", "paged_attention_prefill", "write_kv"]
