"""Check (or create) what target-bigquery needs before it reads any input.

Every error names the setting to fix, as Meltano's environment variable, so that a bad
configuration fails at start-up, before the tap's first STATE could be stored.

As a command (Meltano: `meltano invoke target-bigquery:preflight` / `:create-bucket`):

    target-bigquery-dome-preflight [--config config.json] [--create-bucket]

Without --config the settings are read from TARGET_BIGQUERY_* environment variables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from target_bigquery_dome import credentials
from target_bigquery_dome.settings import (
    DEFAULT_LOCATION,
    ConfigError,
    check_values,
    env_name,
    setting_ref,
)


def config_from_env() -> dict[str, Any]:
    """The settings Meltano would pass, read from TARGET_BIGQUERY_* environment variables."""
    names = ("project", "dataset", "location", "bucket", "credentials_path", "credentials_json")
    return {s: os.environ[env_name(s)] for s in names if os.environ.get(env_name(s))}


def check(
    config: dict[str, Any],
    create_bucket: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Validate settings, credentials, the staging bucket and the dataset's location.

    Returns a summary; raises ConfigError naming the setting at fault.
    """
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc
    from google.cloud import bigquery
    from google.cloud import storage as gcs_storage  # type: ignore[attr-defined]

    say = log or (lambda msg: None)
    check_values(config)
    bucket_name = str(config["bucket"])
    location = str(config.get("location") or DEFAULT_LOCATION)
    project = config["project"]

    creds, source = credentials.from_settings(config)
    gcs = gcs_storage.Client(project=project, credentials=creds)
    try:
        bucket = gcs.lookup_bucket(bucket_name)
    except auth_exc.GoogleAuthError as exc:
        raise ConfigError(f"credentials from {source} were rejected: {exc}") from exc
    except gexc.Forbidden as exc:
        raise ConfigError(
            f"{setting_ref('bucket')}: no permission to read bucket {bucket_name!r} with {source}"
            f" (needs storage.buckets.get and object create/read): {exc.message}"
        ) from exc
    if bucket is None:
        if not create_bucket:
            raise ConfigError(
                f"{setting_ref('bucket')}: GCS bucket {bucket_name!r} does not exist (project"
                f" {project!r}). Create it in location {location} first:"
                " `meltano --environment=prod invoke target-bigquery:create-bucket`"
            )
        bucket = gcs.create_bucket(bucket_name, project=project, location=location)
        say(f"created bucket gs://{bucket_name} in {bucket.location}")
    bucket_location = str(bucket.location or "")
    if bucket_location.lower() != location.lower():
        raise ConfigError(
            f"{setting_ref('location')} is {location!r} but GCS bucket {bucket_name!r}"
            f" ({setting_ref('bucket')}) is in {bucket_location!r}: BigQuery loads from a bucket"
            " in the dataset's location only: use a bucket there, or fix the location."
        )

    bq = bigquery.Client(project=project, credentials=creds, location=location)
    dataset_id = f"{project}.{config['dataset']}"
    try:
        dataset = bq.get_dataset(dataset_id)
    except gexc.NotFound:
        dataset_location = None  # the target creates it in `location`
    except auth_exc.GoogleAuthError as exc:
        raise ConfigError(f"credentials from {source} were rejected: {exc}") from exc
    else:
        dataset_location = dataset.location
        if dataset_location and dataset_location.lower() != location.lower():
            raise ConfigError(
                f"{setting_ref('location')} is {location!r} but dataset {dataset_id!r}"
                f" ({setting_ref('dataset')}) is in {dataset_location!r}"
            )
    summary = {
        "bucket": f"gs://{bucket_name} ({bucket_location})",
        "dataset": f"{dataset_id} ({dataset_location or 'created on first load in ' + location})",
        "credentials": source,
    }
    say("preflight ok: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config", help="target config JSON (default: TARGET_BIGQUERY_* env)")
    parser.add_argument("--create-bucket", action="store_true", help="create the bucket if missing")
    args = parser.parse_args(argv)
    config: dict[str, Any] = config_from_env()
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            config.update(json.load(fh))
    try:
        check(config, create_bucket=args.create_bucket, log=lambda m: print(m, flush=True))
    except ConfigError as exc:
        print(f"target-bigquery preflight failed: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
