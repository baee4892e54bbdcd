"""The HTTP routes, one module per feature."""

from fw.server.protocol.common import ErrorResponse

#: what the OpenAPI schema lists as the error answers of a route with a JSON body
ERROR_RESPONSES = {
    400: {"model": ErrorResponse, "description": "Invalid or unsupported request."},
    401: {"model": ErrorResponse, "description": "Missing or wrong API key."},
    404: {"model": ErrorResponse, "description": "Unknown model."},
    413: {"model": ErrorResponse, "description": "The body is larger than --max-request-body-bytes."},
    500: {"model": ErrorResponse, "description": "Internal error; the message carries the request id."},
    503: {"model": ErrorResponse, "description": "Overloaded; retry after Retry-After seconds."},
}

def stream_response(events: str) -> dict[int, dict]:
    """A generation route's 200: JSON, or server-sent events (``events`` says which)
    when the request sets stream."""
    return {200: {"description": f"The answer as JSON; with `stream: true`, server-sent events ({events}).",
                  "content": {"text/event-stream": {"schema": SSE_EVENT}}}}


#: one server-sent event, as a client's parser reads it (what the stream's schema describes)
SSE_EVENT = {"type": "object", "required": ["data"], "properties": {
    "event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"}}}


#: the OpenAI chat and completions routes' 200
STREAM_RESPONSE = stream_response("`data: <chunk JSON>` lines, an error object if the request fails after it "
                                  "started, then `data: [DONE]`")


def json_errors(*codes: int, description: str | None = None) -> dict[int, dict]:
    """ERROR_RESPONSES entries for a route whose own answer is not JSON (FastAPI would
    document the error model under the route's media type); ``description`` replaces
    the usual one."""
    return {code: {"description": description or ERROR_RESPONSES[code]["description"],
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
            for code in codes}
