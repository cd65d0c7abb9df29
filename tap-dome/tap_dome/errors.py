"""Errors the tap raises on purpose, each with a message a user can act on."""

from __future__ import annotations


class DomeError(Exception):
    """Base of every error tap-dome raises deliberately."""


class DomeAuthError(DomeError):
    """The API refused the key (401/403): retrying cannot help."""


class DomeRequestError(DomeError):
    """The API rejected a request (4xx other than 429): retrying cannot help."""


class DomeRetriesExhausted(DomeError):
    """A request kept failing with retryable errors past `max_retries`."""


class DomePaginationError(DomeError):
    """The API's pagination made no progress (repeated key, empty page with has_more)."""


class DomeDataError(DomeError):
    """A fill came back without the fields that identify it."""


class DomeConfigError(DomeError):
    """A setting makes the run impossible (found before any request)."""


class DomeStateError(DomeError):
    """The Singer state handed to the tap cannot be used (found before any request)."""
