"""--api-key: every /v1/* request (and /sleep, /wake_up) must carry one of the keys, as a
Bearer token (``Authorization: Bearer KEY``, OpenAI's clients) or in ``x-api-key``
(Anthropic's). So must /tokenize, /detokenize and /get_tokenizer_info unless
--tokenize-without-api-key: they run the tokenizer and chat templates, work a stranger
should not be able to order (vLLM leaves them open).

Keys are compared through their SHA-256 digests with ``hmac.compare_digest`` against
every configured key, so neither the time taken nor an early exit tells an attacker how
much of a guess was right (or how long a key is).
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from fw.server.errors import ApiError, error_shape, route_path


#: routes outside /v1 that change the server's state, so they need the key too
PROTECTED = ("/sleep", "/wake_up")
#: the routes outside /v1 that run the tokenizer
TOKENIZER_PATHS = ("/tokenize", "/detokenize", "/get_tokenizer_info")


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class APIKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: list[str], *, tokenizer_paths_open: bool = False):
        self.app = app
        self.digests = [_digest(k.encode()) for k in keys]
        self.guarded = PROTECTED + (() if tokenizer_paths_open else TOKENIZER_PATHS)

    def _offered(self, scope: Scope) -> list[bytes]:
        """Every key the request carries: the Bearer token and the x-api-key header."""
        keys = []
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer" and token.strip():
                    keys.append(token.strip())
            elif name == b"x-api-key" and value.strip():
                keys.append(value.strip())
        return keys

    def _authorized(self, scope: Scope) -> bool:
        # every offered key against every configured one: no early exit on a match
        matches = [hmac.compare_digest(_digest(key), d) for key in self._offered(scope) for d in self.digests]
        return any(matches)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope)
        guarded = path.startswith("/v1") or path.rstrip("/") in self.guarded
        if scope["type"] == "http" and guarded and not self._authorized(scope):
            error = ApiError(401, "missing or invalid API key; send 'Authorization: Bearer <key>' "
                                  "or 'x-api-key: <key>'",
                             code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
            await error.response(error_shape(scope))(scope, receive, send)
            return
        await self.app(scope, receive, send)
