"""check_options: a bad --scheduler-cls is refused before the engine loads, now that the
scheduler is imported only when the option is given."""

from __future__ import annotations

import pytest

from fw.server.launch import check_options
from tests.core.server.helpers import serve_config


@pytest.mark.parametrize("path, message", [
    ("tests.core.engine.nothing.Here", "cannot import"),
    ("fw.engine.request:Request", "not a subclass"),
])
def test_a_bad_scheduler_cls_is_refused_before_the_load(path, message):
    with pytest.raises(ValueError, match=f"--scheduler-cls: .*{message}"):
        check_options(serve_config(scheduler_cls=path))


def test_a_good_scheduler_cls_passes():
    check_options(serve_config(scheduler_cls="fw.engine.scheduler.Scheduler"))
