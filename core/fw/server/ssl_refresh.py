"""``--enable-ssl-refresh``: a renewed TLS certificate is served without a restart.

The server's SSL context is the one every new connection handshakes with, so loading the
new certificate chain (and CA certificates) into it changes what the next client sees;
open connections keep theirs. The files are polled, so no file-watching dependency is
needed; a half-written renewal that fails to load is logged and retried next time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from typing import Any

logger = logging.getLogger("fw.server")

POLL_SECONDS = 1.0


def _mtimes(paths: list[str]) -> tuple[float, ...]:
    stamps = []
    for path in paths:
        try:
            stamps.append(os.stat(path).st_mtime_ns)
        except OSError:
            stamps.append(-1)
    return tuple(stamps)


async def refresh_ssl_forever(context: ssl.SSLContext, frontend: Any) -> None:
    """Reload ``context`` whenever --ssl-certfile, --ssl-keyfile or --ssl-ca-certs change."""
    interval = POLL_SECONDS
    paths = [p for p in (frontend.ssl_certfile, frontend.ssl_keyfile, frontend.ssl_ca_certs) if p]
    seen = _mtimes(paths)
    while True:
        await asyncio.sleep(interval)
        now = _mtimes(paths)
        if now == seen:
            continue
        try:
            context.load_cert_chain(frontend.ssl_certfile, frontend.ssl_keyfile)
            if frontend.ssl_ca_certs:
                context.load_verify_locations(frontend.ssl_ca_certs)
        except (OSError, ssl.SSLError) as exc:
            logger.warning("--enable-ssl-refresh: the changed certificate files do not load yet: %s", exc)
            continue
        seen = now
        logger.info("TLS certificate reloaded from %s", frontend.ssl_certfile)
