"""Checks every inbound endpoint shares: body size, UTF-8, and clear 4xx answers."""

from __future__ import annotations

from flask import Response, abort, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge


def raw_body(limit: int) -> bytes:
    """The request body, or 413 when it is over ``limit`` bytes (chunked bodies included)."""
    length = request.content_length
    if length is not None and length > limit:
        abort(413)
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        abort(413)
    if len(data) > limit:
        abort(413)
    if length is None and len(data) >= limit and request.environ.get("wsgi.input_terminated"):
        # A streamed (chunked) body is cut silently at MAX_CONTENT_LENGTH by Werkzeug: a body
        # that filled the limit may have more behind it, which would otherwise be dropped.
        try:
            more = request.environ["wsgi.input"].read(1)
        except (OSError, ValueError):
            more = b""
        if more:
            abort(413)
    return data


def utf8(data: bytes) -> str:
    """The body as text; 400 when it is not valid UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        abort(400, description="body is not valid UTF-8")


def json_error(exc: HTTPException) -> Response:
    """A short JSON body for a 4xx from a webhook endpoint (never an HTML page)."""
    response = jsonify(error=exc.name, description=exc.description)
    response.status_code = exc.code or 400
    return response
