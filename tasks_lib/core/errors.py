"""Errors with messages meant for people."""


class InvalidInput(ValueError):
    """A request or file the model cannot take; the message names the problem.

    ``status`` is the HTTP status serving answers with (400 bad input, 413 too large,
    415 unsupported media type, 422 well-formed but unusable).
    """

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status
