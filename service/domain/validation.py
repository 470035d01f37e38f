"""A pydantic validation failure in OpenAI's words, shared by every body the domain parses."""

from __future__ import annotations

from pydantic_core import ErrorDetails

from service.errors import InvalidRequest


def invalid_request(failure: ErrorDetails, param: str | None) -> InvalidRequest:
    """OpenAI's wording for one validation failure, reported at `param`."""
    if failure["type"] == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}"
    elif failure["type"] == "missing":
        message = f"Missing required parameter: '{param}'."
    elif param:
        message = f"Invalid {param}: {failure['msg']}"
    else:
        message = f"Invalid request body: {failure['msg']}"
    return InvalidRequest(message, param=param)
