"""Request and response bodies of the HTTP API (pydantic), one module per API.

Request models forbid unknown fields, so a misspelled or unsupported parameter is
answered with a 400 that names it instead of being silently ignored.
"""
