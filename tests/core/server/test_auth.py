"""--api-key against near misses: only an exact key, sent as a Bearer token or in
``x-api-key`` (Anthropic's clients), opens /v1.

A check that compared a prefix of the key (or of its digest), ignored case, or took any
scheme would still let the right key in; these guesses are what it must keep out.
"""

from __future__ import annotations

import hashlib
import itertools

import pytest

KEY = "sk-fw-3f9Q7tLm2Z"
OTHER = "second-key-88"


@pytest.fixture(scope="module")
def live():
    from tests.core.server.conftest import LiveServer
    from tests.core.server.fake_engine import FakeEngine
    from tests.core.server.helpers import serve_config

    server = LiveServer(FakeEngine(), serve_config(api_key=[KEY, OTHER])).start()
    yield server
    server.stop()


def status(live, authorization: str | None, path: str = "/v1/models", header: str = "Authorization") -> int:
    headers = {} if authorization is None else {header: authorization}
    with live.http() as http:
        return http.get(path, headers=headers).status_code


def flip(char: str) -> str:
    return "x" if char != "x" else "y"


NEAR_MISSES = {
    "last character off": "Bearer " + KEY[:-1] + flip(KEY[-1]),
    "first character off": "Bearer " + flip(KEY[0]) + KEY[1:],
    "middle character off": "Bearer " + KEY[:7] + flip(KEY[7]) + KEY[8:],
    "a prefix": "Bearer " + KEY[:-1],
    "the first half": "Bearer " + KEY[: len(KEY) // 2],
    "one character": "Bearer " + KEY[0],
    "a suffix": "Bearer " + KEY[1:],
    "the key and more": "Bearer " + KEY + "0",
    "the key twice": "Bearer " + KEY + KEY,
    "both keys": "Bearer " + KEY + OTHER,
    "upper case": "Bearer " + KEY.upper(),
    "lower case": "Bearer " + KEY.lower(),
    "swapped case": "Bearer " + KEY.swapcase(),
    "Basic scheme": "Basic " + KEY,
    "Token scheme": "Token " + KEY,
    "a scheme that starts like Bearer": "Bearerx " + KEY,
    "a scheme that Bearer starts": "Bear " + KEY,
    "no scheme": KEY,
    "scheme and key glued": "Bearer" + KEY,
    "the scheme alone": "Bearer",
    "an empty header": "",
    "the word key": "Bearer key",
    "another server's default": "Bearer EMPTY",
}


@pytest.mark.parametrize("authorization", NEAR_MISSES.values(), ids=NEAR_MISSES.keys())
def test_near_misses_are_refused(live, authorization):
    assert status(live, authorization) == 401


#: the same guesses as the value of x-api-key (where the bare key is the right one)
X_API_KEY_NEAR_MISSES = {name: value.removeprefix("Bearer ") for name, value in NEAR_MISSES.items()
                         if name != "no scheme"} | {
    "a Bearer token": "Bearer " + KEY, "both keys spaced": KEY + " " + OTHER}


@pytest.mark.parametrize("key", X_API_KEY_NEAR_MISSES.values(), ids=X_API_KEY_NEAR_MISSES.keys())
def test_near_misses_in_x_api_key_are_refused(live, key):
    assert status(live, key, header="x-api-key") == 401


@pytest.mark.parametrize("key", [KEY, OTHER])
def test_each_key_opens_v1_in_x_api_key(live, key):
    assert status(live, key, header="x-api-key") == 200


@pytest.mark.parametrize("header", ["api-key", "x-api-token", "x-key", "cookie", "authorization-key"])
def test_the_key_in_another_header_is_refused(live, header):
    assert status(live, KEY, header=header) == 401


def digest_near_miss(key: str, where: slice) -> str:
    """A guess whose SHA-256 digest equals the key's over ``where`` (two bytes: found in
    ~65,000 tries), for a check that compared only part of the digests."""
    target = hashlib.sha256(key.encode()).digest()[where]
    for i in itertools.count():
        guess = f"{key}-{i}"
        if hashlib.sha256(guess.encode()).digest()[where] == target:
            return guess


@pytest.mark.parametrize("where", [slice(0, 1), slice(0, 2), slice(-2, None)],
                         ids=["first byte", "first two", "last two"])
@pytest.mark.parametrize("key", [KEY, OTHER])
def test_guesses_that_share_part_of_a_keys_digest_are_refused(live, key, where):
    assert status(live, "Bearer " + digest_near_miss(key, where)) == 401


def test_no_header_is_refused_with_how_to_authenticate(live):
    with live.http() as http:
        response = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["message"] == "missing or invalid API key; send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"


@pytest.mark.parametrize("scope,path", [
    ({"path": "/api/v1/models", "root_path": "/api"}, "/v1/models"),  # uvicorn: path includes the root
    ({"path": "/v1/models", "root_path": "/api"}, "/v1/models"),  # servers whose path does not
    ({"path": "/v1/models"}, "/v1/models"),  # no root_path at all (it is optional in ASGI)
])
def test_the_key_is_checked_on_the_path_below_the_root(scope, path):
    from fw.server.errors import route_path

    assert route_path(scope) == path


@pytest.mark.parametrize("authorization", [
    "Bearer " + KEY, "Bearer " + OTHER, "bearer " + KEY, "BEARER " + OTHER, "Bearer  " + KEY])
def test_each_key_opens_v1_whatever_the_scheme_case(live, authorization):
    """The scheme is case-insensitive (RFC 9110); a second space is not part of the token."""
    assert status(live, authorization) == 200


def test_every_v1_route_is_guarded_and_nothing_else(live):
    for path in ("/v1/models", "/v1/completions", "/v1/chat/completions", "/v1/load_lora_adapter", "/v1"):
        assert status(live, None, path) == 401, path
    for path in ("/health", "/version", "/metrics", "/openapi.json", "/docs"):
        assert status(live, None, path) == 200, path
    assert status(live, "Bearer " + KEY, "/v1/completions") != 401


def test_through_the_openai_client(live):
    import openai

    with pytest.raises(openai.AuthenticationError):
        live.openai(api_key=KEY[:-1]).models.list()
    assert [m.id for m in live.openai(api_key=KEY).models.list()] == ["fake-model"]


@pytest.mark.parametrize("path", ["/tokenize/", "/detokenize/", "/get_tokenizer_info/", "/sleep/", "/wake_up/"])
def test_a_trailing_slash_does_not_get_past_the_key(live, path):
    """``/tokenize/`` is the same route as ``/tokenize``: refused at the door (401), not
    handed on to the app (which would redirect, or answer if it matched the slash)."""
    with live.http(follow_redirects=False) as http:
        response = http.post(path, json={})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_the_middleware_guards_the_tokenizer_routes_unless_told_otherwise():
    """Secure by default for anyone mounting ``APIKeyMiddleware`` themselves: the
    tokenizer routes need the key unless ``tokenizer_paths_open=True`` says they don't."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from fw.server.auth import APIKeyMiddleware

    def tokenize(request):
        return PlainTextResponse("tokens")

    def app(**options):
        return APIKeyMiddleware(Starlette(routes=[Route("/tokenize", tokenize, methods=["POST"])]),
                                keys=[KEY], **options)

    with TestClient(app()) as client:
        assert client.post("/tokenize").status_code == 401
        assert client.post("/tokenize", headers={"x-api-key": KEY}).text == "tokens"
    with TestClient(app(tokenizer_paths_open=True)) as client:
        assert client.post("/tokenize").text == "tokens"
