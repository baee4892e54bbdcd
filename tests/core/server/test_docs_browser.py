"""/docs in a real headless browser, with every host but the server's made unreachable:
the page must render from fw's own files."""

from __future__ import annotations

import shutil
import subprocess

import pytest

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)

pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="needs a headless Chromium (Debian: apt-get install chromium); "
                            "CI decides whether to install it")


def test_docs_render_offline(server, tmp_path):
    command = [
        BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        # any host other than the server's loopback address fails to resolve
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=15000", "--dump-dom", f"{server.url}/docs",
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    # Swagger UI built the page: the API title and the operations from /openapi.json
    assert 'class="swagger-ui' in dom
    assert "/v1/chat/completions" in dom and "/v1/completions" in dom
