"""Run the kernels on Triton's CPU interpreter.

Triton picks interpreter or compiler when a kernel is decorated, i.e. when ``fw_kernels``
is imported, so the variable is set here at import time, before any test module in this
folder imports it. ``test_interpreter_is_active`` checks that it took effect.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"
