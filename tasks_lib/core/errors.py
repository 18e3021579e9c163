"""Errors with messages meant for people."""

from __future__ import annotations


class InvalidInput(ValueError):
    """A request or file the model cannot take; the message names the problem.

    ``status`` is the HTTP status serving answers with (400 bad input, 413 too large,
    415 unsupported media type, 422 well-formed but unusable). ``field`` names the request
    field at fault when the raiser knows it (serving fills it in otherwise when it can).
    """

    def __init__(self, message: str, status: int = 400, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.field = field
