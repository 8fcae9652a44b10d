"""The one error a request can earn: an HTTP status, a message a person can act on, a type."""

from __future__ import annotations


class InputError(ValueError):
    """A request the model cannot take (4xx); the message names what to change."""

    status = 422
    error_type = "validation"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class TooLarge(InputError):
    """A body, an input list or an input longer than the bundle's limits allow."""

    status = 413
    error_type = "too_large"


class Busy(InputError):
    """The queue is full or the server is draining: come back later."""

    status = 503
    error_type = "overloaded"
