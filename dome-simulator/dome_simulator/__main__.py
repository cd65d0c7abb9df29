"""Command line: run a simulator until SIGTERM/SIGINT.

Prints one JSON line once listening, ``{"url", "wallets", "api_key", ...}``, so a
parent process (an end-to-end test, a demo script) can read where to connect.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import orjson

from .dataset import Dataset
from .server import DomeSimulator
from .server_limits import TIER_LIMITS, parse_rate_limit

PROFILES = ("standard", "demo", "bench")


def _latency(text: str) -> tuple[float, float]:
    """``"20"`` (fixed) or ``"5-40"`` (uniform range), milliseconds -> seconds."""
    low, _, high = text.partition("-")
    try:
        lo_ms = float(low)
        hi_ms = float(high) if high else lo_ms
    except ValueError:
        raise argparse.ArgumentTypeError("use MS or MIN-MAX in milliseconds") from None
    if not 0 <= lo_ms <= hi_ms:
        raise argparse.ArgumentTypeError("latency must satisfy 0 <= min <= max")
    return lo_ms / 1000.0, hi_ms / 1000.0


def _non_negative(text: str) -> float:
    """Seconds or a Unix time: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The CLI's arguments (kept separate so tests and docs can inspect them)."""
    parser = argparse.ArgumentParser(
        prog="dome-simulator",
        description=(
            "Serve a simulated Dome API (GET /v1/polymarket/orders, activity, markets, wallet) "
            "on localhost."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 lets the OS choose")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", choices=PROFILES, default="standard")
    parser.add_argument("--page", type=int, default=1000, help="standard: page-size edge cases")
    parser.add_argument("--large", type=int, default=30_000, help="standard: big wallet size")
    parser.add_argument("--bench-wallets", type=int, default=10, help="bench: wallet count")
    parser.add_argument("--bench-fills", type=int, default=10_000, help="bench: fills per wallet")
    parser.add_argument(
        "--rate-limit", choices=[*TIER_LIMITS, "none"], default="none", help="API tier to enforce"
    )
    parser.add_argument("--latency-ms", type=_latency, default=(0.0, 0.0), metavar="MS[-MAX]")
    clock = parser.add_mutually_exclusive_group()
    clock.add_argument(
        "--data-lag",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="serve data only up to the wall clock minus SECONDS (an indexer that is behind)",
    )
    clock.add_argument(
        "--frozen-now",
        type=_non_negative,
        metavar="UNIX",
        help="freeze the data clock at this Unix time; it moves only via POST /_sim/advance",
    )
    parser.add_argument("--api-key", default="sim-key")
    parser.add_argument("--wallets-out", type=Path, help="write the wallets, one per line")
    return parser


def _dataset(args: argparse.Namespace) -> Dataset:
    if args.profile == "demo":
        return Dataset.demo(args.seed)
    if args.profile == "bench":
        return Dataset.bench(args.seed, args.bench_wallets, args.bench_fills)
    return Dataset.standard(args.seed, args.page, large=args.large)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m dome_simulator`` and ``dome-simulator``."""
    args = build_parser().parse_args(argv)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    sim = DomeSimulator(
        seed=args.seed,
        api_key=args.api_key,
        dataset=_dataset(args),
        rate_limit=parse_rate_limit(args.rate_limit),
        latency=args.latency_ms,
        data_lag=args.data_lag,
        frozen_now=args.frozen_now,
        host=args.host,
        port=args.port,
    )
    try:
        url = sim.start()
    except OSError as exc:
        print(f"dome-simulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.wallets_out is not None:
            args.wallets_out.write_text("".join(f"{w}\n" for w in sim.wallets))
        banner = {
            "url": url,
            "wallets": sim.wallets,
            "api_key": sim.api_key,
            "control_url": sim.control_url,
            "roles": sim.roles,
            "profile": args.profile,
            "seed": args.seed,
            "clock": sim.clock.describe(),
        }
        sys.stdout.buffer.write(orjson.dumps(banner) + b"\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
