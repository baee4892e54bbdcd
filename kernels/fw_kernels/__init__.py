"""fw_kernels: Triton kernels for paged attention, with torch reference twins."""
