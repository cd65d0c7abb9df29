"""A Dome API simulator: a real HTTP server on 127.0.0.1 for ``GET /v1/polymarket/orders``.

It follows /work/shared/dome-api.md (auth, parameters, keyset and offset paging,
error bodies, newest-first order) and adds switchable faults (faults.py), a rate
limiter (server_limits.py), request statistics (stats.py) and an HTTP control plane
under ``/_sim``. Used by tests, end-to-end pipelines, benchmarks and the no-key demo.

Time, visibility and ``advance``
--------------------------------
- The simulator is a real-time API. Its clock is the real wall clock plus an offset
  (``advance(seconds=...)`` grows the offset; it never shrinks).
- Every fill has a ``timestamp`` (block time) and is served only once the simulator
  clock has reached its ``indexed_at`` (default: its timestamp). Fills indexed late
  are neither served nor in ``truth()`` until then.
- No fill is ever stamped after the *real* wall clock: the tap ends its walks at its
  own clock, so ``advance(seconds)`` is about which late fills became visible, not
  about making future-dated fills.
- ``advance(seconds=0, new_fills_per_wallet=0, late_fills_per_wallet=0, wallets=None)``:
  first moves the offset, then, for each wallet (default: all), adds
  ``new_fills_per_wallet`` fills stamped 0-3 s before the real wall clock (the new head
  of the history) and ``late_fills_per_wallet`` fills stamped 5-30 minutes ago (inside a
  2-hour lookback) that are indexed, hence visible, from now on.
- ``Dataset.standard`` has a ``late`` wallet with 20 fills indexed 30 minutes after the
  dataset was built: ``advance(seconds=1800)`` reveals them.

Control over HTTP (no key, not counted in stats), also under ``/v1/_sim``
-----------------------------------------------------------------------
``GET /_sim/health``, ``GET /_sim/wallets`` (``{"wallets", "roles"}``),
``GET /_sim/truth[?wallet=]`` (the list ``truth()`` returns), ``GET /_sim/stats``
(``by_status`` keys become strings in JSON), ``POST /_sim/reset_stats``,
``POST /_sim/advance`` (JSON body: the ``advance`` arguments), ``GET /_sim/faults``,
``POST /_sim/faults`` (JSON body: ``set_faults`` arguments, plus ``"clear": true`` to
clear first), ``POST /_sim/clear_faults``. Bad arguments give 400 ``{"error", "message"}``.

Quick use::

    from dome_simulator import DomeSimulator, Dataset
    with DomeSimulator(seed=7, dataset=Dataset.standard(seed=7, page=50, large=2000)) as sim:
        url = sim.base_url                    # "http://127.0.0.1:<port>/v1"
        expected = sim.truth(sim.wallets[3])  # rows plus "order_id"

Command line: ``python -m dome_simulator --help`` (also ``dome-simulator``).
"""

from __future__ import annotations

from .dataset import Dataset, WalletSpec
from .faults import FAIL_KINDS, Faults
from .fill import API_FIELDS, CTF_EXCHANGE, NEG_RISK_CTF_EXCHANGE, Fill
from .identity import order_id
from .server import DomeSimulator
from .server_limits import TIER_LIMITS

__all__ = [
    "API_FIELDS",
    "CTF_EXCHANGE",
    "FAIL_KINDS",
    "NEG_RISK_CTF_EXCHANGE",
    "TIER_LIMITS",
    "Dataset",
    "DomeSimulator",
    "Faults",
    "Fill",
    "WalletSpec",
    "order_id",
]
