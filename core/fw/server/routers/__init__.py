"""The HTTP routes, one module per feature."""

from fw.server.protocol.common import ErrorResponse

#: what the OpenAPI schema lists as the error answers of a generation route
ERROR_RESPONSES = {
    400: {"model": ErrorResponse, "description": "Invalid or unsupported request."},
    401: {"model": ErrorResponse, "description": "Missing or wrong API key."},
    404: {"model": ErrorResponse, "description": "Unknown model."},
    503: {"model": ErrorResponse, "description": "Overloaded; retry after Retry-After seconds."},
}
