"""--api-key: every /v1/* request (and /sleep, /wake_up) must carry one of the keys as a
Bearer token.

Keys are compared through their SHA-256 digests with ``hmac.compare_digest`` against
every configured key, so neither the time taken nor an early exit tells an attacker how
much of a guess was right (or how long a key is).
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from fw.server.errors import ApiError


def route_path(scope: Scope) -> str:
    """The path below --root-path, as the routes see it."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


#: routes outside /v1 that change the server's state, so they need the key too
PROTECTED = ("/sleep", "/wake_up")


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class APIKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: list[str]):
        self.app = app
        self.digests = [_digest(k.encode()) for k in keys]

    def _authorized(self, scope: Scope) -> bool:
        header = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return False
        offered = _digest(token.strip())
        return any([hmac.compare_digest(offered, d) for d in self.digests])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope)
        if scope["type"] == "http" and (path.startswith("/v1") or path in PROTECTED) and not self._authorized(scope):
            error = ApiError(401, "missing or invalid API key; send 'Authorization: Bearer <key>'",
                             code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
            await error.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)
