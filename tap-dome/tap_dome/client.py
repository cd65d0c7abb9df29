"""What every Dome request carries. Requests themselves are made in one place: fetch.py.

The key only ever travels as this header: never as a parameter, in a context, a log line,
the state or an error message.
"""

from __future__ import annotations

from importlib import metadata


def request_headers(api_key: str) -> dict[str, str]:
    """Bearer auth, JSON, and a User-Agent that names the tap and its version."""
    try:
        version = metadata.version("tap-dome")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        version = "0"
    return {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json",
        "User-Agent": f"tap-dome/{version}",
    }
