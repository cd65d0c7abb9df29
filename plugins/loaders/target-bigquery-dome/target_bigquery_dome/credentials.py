"""Google credentials from the settings: a key file, the key as JSON, or application default.

Without credentials_path and credentials_json the loader uses application default
credentials (ADC): workload identity on GKE / Cloud Run, the VM's service account,
`gcloud auth application-default login`, or GOOGLE_APPLICATION_CREDENTIALS.
"""

from __future__ import annotations

import json
import os
from typing import Any

from google.auth import credentials as ga_credentials

from target_bigquery_dome.settings import ConfigError, setting_ref

SCOPES = (
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/bigquery",
    "https://www.googleapis.com/auth/devstorage.read_write",
)


def from_settings(config: dict[str, Any]) -> tuple[ga_credentials.Credentials, str]:
    """(credentials, where they came from); raise ConfigError naming the setting at fault."""
    from google.oauth2 import service_account

    path = config.get("credentials_path")
    raw = config.get("credentials_json")
    if path:
        ref = setting_ref("credentials_path")
        if not os.path.isfile(path):
            raise ConfigError(f"{ref}: no such file: {path}")
        try:
            with open(path, encoding="utf-8") as fh:
                info = json.load(fh)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{ref}: {path} is not a readable JSON key file ({exc})") from exc
        source = f"{ref} ({path})"
    elif raw:
        try:
            info = json.loads(raw)
        except ValueError as exc:
            # Never quote the value: it is a secret.
            raise ConfigError(f"{setting_ref('credentials_json')}: not valid JSON") from exc
        source = setting_ref("credentials_json")
    else:
        return _application_default()
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigError(
            f'{source}: not a service-account key (its "type" must be service_account)'
        )
    try:
        creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=list(SCOPES)
        )
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"{source}: unusable service-account key ({exc})") from exc
    return creds, source


def _application_default() -> tuple[ga_credentials.Credentials, str]:
    import google.auth
    from google.auth import exceptions as auth_exc

    try:
        creds, _project = google.auth.default(scopes=list(SCOPES))
    except auth_exc.DefaultCredentialsError as exc:
        raise ConfigError(
            f"no credentials: set {setting_ref('credentials_path')} or"
            f" {setting_ref('credentials_json')}, or provide application default credentials"
            f" (workload identity, GOOGLE_APPLICATION_CREDENTIALS): {exc}"
        ) from exc
    return creds, "application default credentials"
