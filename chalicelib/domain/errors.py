"""Errors the domain and services raise; adapters map them to status codes."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A failure a caller can act on: a stable code, a message, and where it went wrong."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class InvalidInput(DomainError):
    code = "invalid_request"


class Unauthorized(DomainError):
    code = "unauthorized"


class Forbidden(DomainError):
    code = "forbidden"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
