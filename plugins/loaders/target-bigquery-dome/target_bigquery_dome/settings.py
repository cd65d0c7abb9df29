"""The loader's settings: one JSON schema (shown by `--about`), defaults, and errors naming them.

Meltano sets each setting from an environment variable TARGET_BIGQUERY_<SETTING>; errors name
both, so that the person reading the log knows what to change where.
"""

from __future__ import annotations

from typing import Any

from singer_sdk import typing as th

ENV_PREFIX = "TARGET_BIGQUERY_"
DEFAULT_LOCATION = "US"
DEFAULT_PREFIX = "target_bigquery"
# Rows per load job (and per staged file in record mode): a table's uploaded files are loaded as
# soon as they hold this many rows, so a backfill loads while it extracts. 50,000 rows (~45 MB of
# JSON) per job keeps a table's load jobs within BigQuery's 1,500 a day up to ~60 million rows a
# day (with the interval's checkpoints), and a million-fill backfill takes about 20 of them.
DEFAULT_BATCH_SIZE = 50_000
# One load job per table at most every 5 minutes: <= 288 a day per running job, well under
# BigQuery's 1,500 load jobs per table per day, with room for several shards of the wallet list.
DEFAULT_LOAD_INTERVAL_SECONDS = 300.0
DEFAULT_TIMEOUT_SECONDS = 1200
DEFAULT_WORKERS = 4
# Files of a killed run (never loaded, never covered by a STATE) older than this are removed by
# a later run (leftovers.py); a live run's wait at most load_interval + timeout (minutes).
DEFAULT_LEFTOVER_HOURS = 6.0
GRANULARITIES = ("hour", "day", "month", "year")
COMPRESSIONS = ("gzip", "none")

# Settings of the z3-target-bigquery wrapper (loader 0.1) that no longer mean anything: the
# loader has one method (staged files + load jobs) and always writes one column per field.
RETIRED_SETTINGS = {
    "method": "the loader always stages files in GCS and runs load jobs",
    "denormalized": "the raw table always has one column per field of the stream",
    "upsert": "the raw table is append-only; dbt deduplicates",
    "overwrite": "the raw table is append-only; dbt deduplicates",
    "fail_fast": "any failed upload or load stops the loader, before any later STATE",
    "options": "upload and load parallelism is the `workers` setting",
}


class ConfigError(Exception):
    """A setting is missing or wrong; the message names it."""


def env_name(setting: str) -> str:
    """The environment variable Meltano reads the setting from."""
    return ENV_PREFIX + setting.upper()


def setting_ref(setting: str) -> str:
    """How errors name a setting: `bucket` (TARGET_BIGQUERY_BUCKET)."""
    return f"setting `{setting}` ({env_name(setting)})"


# project, dataset and bucket are required, but not marked so in the JSON schema: check_values
# reports a missing one with the environment variable to set, which the schema error does not.
CONFIG_SCHEMA: dict[str, Any] = th.PropertiesList(
    th.Property(
        "project",
        th.StringType,
        description="GCP project of the dataset and of the load jobs.",
    ),
    th.Property(
        "dataset",
        th.StringType,
        description=(
            "Required. Dataset of the raw tables (stream `orders` -> table `orders`);"
            " created in `location` if missing."
        ),
    ),
    th.Property(
        "location",
        th.StringType,
        default=DEFAULT_LOCATION,
        description="Location of the dataset and of the staging bucket (they must match).",
    ),
    th.Property(
        "bucket",
        th.StringType,
        description="GCS bucket for the staged files; must exist, in `location`.",
    ),
    th.Property(
        "prefix",
        th.StringType,
        default=DEFAULT_PREFIX,
        description="Object prefix of the staged files: gs://BUCKET/PREFIX/DATASET/TABLE/RUN/....",
    ),
    th.Property(
        "credentials_path",
        th.StringType,
        description=(
            "Service-account key file. Unset (and no credentials_json): application default"
            " credentials (workload identity, gcloud auth, GOOGLE_APPLICATION_CREDENTIALS)."
        ),
    ),
    th.Property(
        "credentials_json",
        th.StringType,
        secret=True,
        description="The service-account key itself, as JSON (instead of credentials_path).",
    ),
    th.Property(
        "batch_size",
        th.IntegerType,
        default=DEFAULT_BATCH_SIZE,
        description=(
            "Rows per load job: a table's uploaded files are loaded as soon as they hold this"
            " many rows (and at each checkpoint); also rows per staged file in record mode"
            " (BATCH files from the tap are staged as they come)."
        ),
    ),
    th.Property(
        "load_interval_seconds",
        th.NumberType,
        default=DEFAULT_LOAD_INTERVAL_SECONDS,
        description=(
            "The files staged so far are loaded (one load job per table) when a STATE message"
            " arrives at least this many seconds after the previous load, and at the end of the"
            " input; that STATE is emitted once the load succeeded. Bounds what a crash makes the"
            " next run read again. Keep >= 60 in production (BigQuery allows 1,500 load jobs per"
            " table a day)."
        ),
    ),
    th.Property(
        "timeout",
        th.IntegerType,
        default=DEFAULT_TIMEOUT_SECONDS,
        description="Seconds to wait for one load job.",
    ),
    th.Property(
        "partition_granularity",
        th.StringType,
        default="day",
        allowed_values=list(GRANULARITIES),
        description="Partitioning of a new raw table on _sdc_batched_at (hour, day, month, year).",
    ),
    th.Property(
        "compression",
        th.StringType,
        default="gzip",
        allowed_values=list(COMPRESSIONS),
        description=(
            "Staged files as gzip JSONL (5x fewer bytes to upload) or plain JSONL (less CPU,"
            " faster loads)."
        ),
    ),
    th.Property(
        "workers",
        th.IntegerType,
        default=DEFAULT_WORKERS,
        description="Threads for uploads, and load jobs in flight at once.",
    ),
    th.Property(
        "leftover_hours",
        th.NumberType,
        default=DEFAULT_LEFTOVER_HOURS,
        description=(
            "Staged objects under PREFIX/DATASET/ and the tap's batch files of a stream that are"
            " older than this are a killed run's (a run deletes its own once loaded): a later"
            " run removes them. Keep well above load_interval_seconds + timeout."
        ),
    ),
    th.Property(
        "temp_dir",
        th.StringType,
        description="Local folder for files being written (default: the system temp folder).",
    ),
    th.Property(
        "preflight",
        th.BooleanType,
        default=True,
        description="Check credentials, the bucket and the locations before reading any input.",
    ),
).to_dict()


def check_values(config: dict[str, Any]) -> None:
    """Reject values the JSON schema lets through; raise ConfigError naming the setting."""
    for required in ("project", "dataset"):
        if not config.get(required):
            raise ConfigError(f"{setting_ref(required)} is required")
    if not config.get("bucket"):
        raise ConfigError(
            f"{setting_ref('bucket')} is required: the GCS bucket files are staged in"
        )
    positive = {"batch_size": 1, "timeout": 1, "workers": 1}
    for name, low in positive.items():
        value = config.get(name)
        if value is not None and int(value) < low:
            raise ConfigError(f"{setting_ref(name)} must be >= {low} (is {value!r})")
    hours = config.get("leftover_hours")
    if hours is not None and float(hours) <= 0:
        raise ConfigError(f"{setting_ref('leftover_hours')} must be > 0 (is {hours!r})")
    interval = config.get("load_interval_seconds")
    if interval is not None and float(interval) < 0:
        raise ConfigError(f"{setting_ref('load_interval_seconds')} must be >= 0 (is {interval!r})")
    granularity = str(config.get("partition_granularity") or "day").lower()
    if granularity not in GRANULARITIES:
        raise ConfigError(
            f"{setting_ref('partition_granularity')} must be one of {', '.join(GRANULARITIES)}"
            f" (is {granularity!r})"
        )
    compression = str(config.get("compression") or "gzip").lower()
    if compression not in COMPRESSIONS:
        raise ConfigError(
            f"{setting_ref('compression')} must be one of {', '.join(COMPRESSIONS)}"
            f" (is {compression!r})"
        )
