"""The base stream for Dome endpoints: base URL, bearer auth, headers, paginator."""

from __future__ import annotations

from typing import Any

from singer_sdk import RESTStream
from singer_sdk.authenticators import BearerTokenAuthenticator
from typing_extensions import override

from tap_dome.pagination import DomePaginator

DEFAULT_API_URL = "https://api.domeapi.io/v1"


class DomeStream(RESTStream[Any]):
    """Shared plumbing of Dome streams (the key is only ever a request header)."""

    @override
    @property
    def url_base(self) -> str:
        return str(self.config.get("api_url") or DEFAULT_API_URL).rstrip("/")

    @override
    @property
    def authenticator(self) -> BearerTokenAuthenticator:
        return BearerTokenAuthenticator(token=str(self.config.get("api_key", "")))

    @override
    @property
    def http_headers(self) -> dict[str, str]:
        headers = dict(super().http_headers)
        headers["Accept"] = "application/json"
        return headers

    @override
    def get_new_paginator(self) -> DomePaginator:
        return DomePaginator()
