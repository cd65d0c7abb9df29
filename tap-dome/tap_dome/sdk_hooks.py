"""Every place tap-dome reaches into singer-sdk internals, in one file (singer-sdk 0.54.9).

Each hook exists for a reason the SDK's public API does not cover, and each is guarded by
a test (tap-dome/tests/test_sdk_hooks.py) that fails if a new SDK version changes what it
relies on. Check them when moving the `singer-sdk` pin.

- `StreamHooks._increment_stream_state`: the SDK moves a bookmark per record; ours moves
  per completed time window (checkpoints.py), so the per-record hook does nothing.
- `StreamHooks.write_state_now`: the SDK writes STATE every 10,000 records and at the end;
  we write it after completed windows, through the SDK's own writer and flush flag.
- `StreamHooks.fast_path_applies`: the SDK's per-record loop (`_sync_records`) costs more
  than building the records; when no stream map, flattening, deselected field, batch
  mode or test-mode record limit could change the output, pages of records are written
  in bulk instead (streams.py), and the loop sees no records.
- `DomeErrorsSpeakForThemselves`: the SDK logs "An unhandled error occurred while syncing"
  before re-raising any error; for our own errors (DomeError, which cli.py reports in one
  line that names the setting or value) that line is noise, so it is filtered out then.
- `StreamHooks.get_batches` (streams.py) sets `state_manager.is_flushed`, the flag the SDK
  checks before the STATE that follows each BATCH message (batches.py).
- `TapHooks._validate_config`: our checks (wallets, dates, tiers, URL) run where the SDK
  checks the schema, so bad settings fail before any request (in one line: cli.py); the
  schema's own errors too, each naming the setting and its variable (the SDK logs each
  error, then a summary line); a setting the tap does not know gets a warning.
- `StreamHooks.state_manager` / `IndexedStateManager`: the SDK finds a partition's state by
  scanning the list of partitions, several times per partition, so a run over N wallets
  costs O(N^2) (10,000 wallets: minutes of CPU before any fill). The manager here keeps an
  index from each context to the SDK's own state dict.
- `TapHooks.__init__` swaps in `EncodedStateWriter`: the SDK's StateWriter compares each
  STATE with a deep copy of the previous one and deep-copies it again; for thousands of
  wallets every STATE then costs tens of milliseconds. Ours compares the encoded bytes.
- `StreamHooks._write_starting_replication_value`: per partition the SDK logs a line and
  stores a starting marker that it pops again at the end; our bookmarks are read by
  checkpoints.py, which never reads that marker, so for 10,000 wallets that is 10,000 log
  lines for nothing. Only our own progress lines are logged.
- `TapHooks._handle_termination`: on SIGTERM or SIGINT the SDK logs "Gracefully shutting
  down" and raises SystemExit(0) in the main thread, so a stopped run looked like a
  success, and retrying worker threads kept the process alive for minutes. Ours ends the
  process at once with 128 + the signal's number and one ERROR line (`stop_on_signal`).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import re
import signal
import sys
from types import FrameType
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk.contrib.msgspec import encoder
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers._state import StateWriter
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib import StateMessage
from singer_sdk.streams._state import StreamStateManager
from typing_extensions import override

from tap_dome.errors import DomeConfigError, DomeError
from tap_dome.writer import WRITING

SDK_VERSION_FOLLOWED = "0.54.9"


SDK_SYNC_ERROR_MESSAGE = "An unhandled error occurred while syncing '%s'"


class DomeErrorsSpeakForThemselves(logging.Filter):
    """Drops the SDK's generic sync-error line while one of our own errors is in flight."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False (drop) for the SDK's line when the exception being handled is a DomeError."""
        return not (
            record.msg == SDK_SYNC_ERROR_MESSAGE and isinstance(sys.exc_info()[1], DomeError)
        )


class EncodedStateWriter(StateWriter):
    """Writes a STATE only when it differs from the last one, compared as encoded JSON."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_encoded: bytes | None = None

    @override
    def write_state(self, state: Any) -> None:
        encoded = encoder.encode(state)
        if encoded != self._last_encoded:
            self._message_writer.write_message(StateMessage(value=state))
            self._last_encoded = encoded


class IndexedStateManager(StreamStateManager):
    """The SDK's state manager, with partition states found by a dict, not a list scan."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._index: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
        self._indexed = 0  # how many entries of the partitions list are in the index

    @override
    def get_context_state(self, context: Any) -> dict[str, Any]:
        """The SDK's own state dict of `context`, created as the SDK creates it if new.

        An entry is the very dict inside the tap's state (kept there, mutated in place by
        the SDK and by checkpoints.py), so the index never holds a copy that could go stale.
        The SDK only ever appends to the partitions list, so each entry is indexed once.
        """
        if not context:
            return super().get_context_state(context)
        key = _key(context)
        state = self._index.get(key)
        if state is None:
            partitions = self._indexed_partitions()
            state = self._index.get(key)
            if state is None and partitions:  # new: appended as the SDK would, unscanned
                state = {"context": dict(context)}
                partitions.append(state)
                self._index[key] = state
                self._indexed += 1
        if state is None:  # the stream's first partition: the SDK makes the list
            state = self._index[key] = super().get_context_state(context)
        return state

    def peek(self, context: Any) -> dict[str, Any] | None:
        """`context`'s state if the tap's state has one; never creates one (a stream that
        reads ahead of its turn must not add entries to the STATE of the stream before)."""
        key = _key(context)
        state = self._index.get(key)
        if state is None:
            self._indexed_partitions()
            state = self._index.get(key)
        return state

    def _indexed_partitions(self) -> list[dict[str, Any]]:
        """The SDK's partitions list, every entry of it in the index (each indexed once)."""
        partitions = self.get_state_partitions() or []
        for partition in partitions[self._indexed :]:
            if isinstance(partition.get("context"), dict):
                self._index.setdefault(_key(partition["context"]), partition)
        self._indexed = len(partitions)
        return partitions


def _key(context: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(context.items()))


class StreamHooks(Stream):
    """The stream-side hooks (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger.addFilter(DomeErrorsSpeakForThemselves())

    @override
    @property
    def state_manager(self) -> IndexedStateManager:
        """The SDK's manager with an index of partition states (module docstring)."""
        if not isinstance(self._state_manager, IndexedStateManager):
            self._state_manager = IndexedStateManager(
                tap_name=self.tap_name,
                stream_name=self.name,
                tap_state=self._tap_state,
                state_partitioning_keys=self.state_partitioning_keys,
                is_sorted=self.is_sorted,
                check_sorted=self.check_sorted,
            )
        return self._state_manager

    @override
    def _write_starting_replication_value(self, context: Any) -> None:
        """No per-partition starting marker or log line (module docstring)."""

    @override
    def _increment_stream_state(self, latest_record: Any, *, context: Any = None) -> None:
        """Bookmarks move per completed window (checkpoints.py), never per record."""

    def write_state_now(self) -> None:
        """Write a STATE message with the current bookmarks, through the SDK's writer."""
        self.state_manager.is_flushed = False
        self._write_state_message()

    def fast_path_applies(self, *, batch_ok: bool = False) -> bool:
        """True when the SDK's per-record processing could not change a record's output.

        `batch_ok`: the caller writes batch files itself (streams.get_batches).
        """
        maps = self.stream_maps
        return (
            self.ABORT_AT_RECORD_COUNT is None
            and (batch_ok or not self.get_batch_config(self.config))
            and len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and not maps[0].flattening_enabled
            and maps[0].stream_alias == self.name
            and all(self.mask[("properties", name)] for name in self.schema["properties"])
        )


class TapHooks(Tap):
    """The tap-side hooks (see the module docstring)."""

    settings: Any  # the resolved settings (tap.py), which raise ConfigValidationError

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state_writer = EncodedStateWriter(self.message_writer)

    def _warn_of_unknown_settings(self) -> None:
        """A setting the tap does not know is ignored: say so, with the nearest name (a
        misspelt `page_sise` would otherwise pass in silence, the default in its place)."""
        known = set(self.config_jsonschema.get("properties", {}))
        for name in sorted(set(self.config) - known):
            near = difflib.get_close_matches(name, sorted(known), n=1)
            self.logger.warning(
                "Setting `%s` is not a tap-dome setting and is ignored%s",
                name,
                f" (did you mean `{near[0]}`?)" if near else ".",
            )

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        stop_on_signal(signum, self.logger)

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """The schema checks, then ours (wallets, dates, tier, URL): all before any request."""
        try:
            errors = super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as exc:  # the SDK would log each, then a summary
            raise DomeConfigError("; ".join(map(_named_setting, exc.errors))) from exc
        self._warn_of_unknown_settings()
        if not errors:
            try:
                _ = self.settings
            except ConfigValidationError as exc:
                if raise_errors:  # reported in one line by cli.py, not the SDK's two
                    raise DomeConfigError("; ".join(exc.errors) or str(exc)) from exc
                errors.extend(exc.errors)
        return errors


def stop_on_signal(signum: int, logger: logging.Logger) -> None:
    """End the process now, with 128 + `signum` (143 for SIGTERM, 130 for SIGINT).

    Nothing a STATE covers is lost: every STATE is written after the records it covers
    (writer.py), and the rerun reads again what came after the last one. What Python has
    buffered on stdout is written out first, and a write in progress ends first, so the
    last line is whole; the tap's own buffer of RECORD lines is not written (the rerun
    reads them again). Worker threads, retrying or
    not, end with the process, and so do the helper processes (their sockets close).
    """
    name = signal.Signals(signum).name

    def stop() -> None:
        logger.error(
            "Stopped by %s: the run did not finish; rerun to resume from the last STATE "
            "(every fill it covers was written before it).",
            name,
        )
        for stream in (sys.stdout, sys.stderr):
            # The reader may be gone, or the stream closed: the exit matters, not these.
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(128 + signum)

    # Not inside a write to stdout: a line would be cut in half (writer.py).
    WRITING.after_writes(stop)


_IN_SETTING = re.compile(r"^(?P<what>.*) in config\['(?P<name>\w+)'\]$")
_REQUIRED = re.compile(r"^'(?P<name>\w+)' is a required property$")


def _named_setting(error: str) -> str:
    """A schema error of the SDK's as one that names the setting and its variable."""
    match = _IN_SETTING.match(error)
    if match:
        name = match.group("name")
        return f"Setting `{name}` ({_variable(name)}): {match.group('what')}"
    match = _REQUIRED.match(error)
    if match:
        name = match.group("name")
        return f"Setting `{name}` ({_variable(name)}) is required"
    return error


def _variable(name: str) -> str:
    return "TAP_DOME_" + name.upper()
