"""A Dome API simulator: a real HTTP server on 127.0.0.1 for ``GET /v1/polymarket/orders``,
``/activity``, ``/markets`` and ``/wallet``, with data that agrees across them (README.md).

It follows the Dome API documentation (docs.domeapi.io: auth, parameters, keyset and
offset paging, error bodies, newest-first order) and adds a data clock (clock.py),
switchable faults (faults.py), a rate limiter (server_limits.py), request statistics
(stats.py) and an HTTP control plane under ``/_sim``. Used by tests, end-to-end
pipelines, benchmarks and the no-key demo.

Time: the data clock, visibility and ``advance``
------------------------------------------------
- The simulator's *data clock* (clock.py) is how far the API's indexer has got. Live (the
  default): the wall clock minus ``data_lag`` (0 by default) plus what ``advance`` added.
  Frozen (``frozen_now=<unix>``): a fixed time that moves only when told.
- Every fill has a ``timestamp`` (block time) and an ``indexed_at`` (default: its
  timestamp). It is served, and in ``truth()``, only once the data clock has reached
  both: fills stamped after the data clock are "not yet indexed". The data clock never
  goes back.
- Datasets are built relative to their ``now`` (by default the wall clock when built):
  with a lag or a frozen clock behind it, the newest history waits until the data clock
  reaches it.
- ``advance(seconds=0, new_fills_per_wallet=0, late_fills_per_wallet=0, wallets=None,
  late_age=[300, 1800])``: first moves the data clock forward by ``seconds`` (revealing
  what it passes), then, for each wallet (default: all), adds ``new_fills_per_wallet``
  fills stamped 0-3 s before the data clock (the new head of the history) and
  ``late_fills_per_wallet`` fills stamped ``late_age`` seconds before it, indexed, hence
  visible, from now on. In live mode new fills are never stamped after the real wall
  clock: a data clock advanced past the wall only reveals late fills sooner.
- ``set_clock(lag=...)`` runs live that far behind the wall, ``set_clock(frozen_now=...)``
  freezes at a time, ``set_clock(freeze=True)`` freezes where it is; a change that would
  move the data clock back is refused.
- ``Dataset.standard`` has a ``late`` wallet with 20 fills indexed 30 minutes after the
  dataset was built: ``advance(seconds=1800)`` reveals them (at lag 0).

Control over HTTP (no key, not counted in stats), also under ``/v1/_sim``
-----------------------------------------------------------------------
``GET /_sim/health``, ``GET /_sim/wallets`` (``{"wallets", "roles"}``),
``GET /_sim/truth[?wallet=]`` (the list ``truth()`` returns), ``GET /_sim/activity_truth``,
``GET /_sim/markets_truth``, ``GET /_sim/wallet_mappings``, ``POST /_sim/resolve_market``,
``GET /_sim/stats``
(``by_status`` keys become strings in JSON), ``POST /_sim/reset_stats``,
``POST /_sim/advance`` (JSON body: the ``advance`` arguments), ``GET /_sim/clock``,
``POST /_sim/clock`` (JSON body: ``{"lag": s}``, ``{"frozen_now": unix}`` or
``{"freeze": true}``), ``GET /_sim/faults``,
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

from .activity import ACTIVITY_FIELDS, Activity
from .catalog import MARKET_FIELDS
from .dataset import Dataset, WalletSpec
from .faults import FAIL_KINDS, ROUTES, Faults
from .fill import API_FIELDS, CTF_EXCHANGE, NEG_RISK_CTF_EXCHANGE, Fill
from .identity import activity_id, order_id
from .server import DomeSimulator
from .server_limits import TIER_LIMITS

__all__ = [
    "ACTIVITY_FIELDS",
    "API_FIELDS",
    "CTF_EXCHANGE",
    "FAIL_KINDS",
    "MARKET_FIELDS",
    "NEG_RISK_CTF_EXCHANGE",
    "ROUTES",
    "TIER_LIMITS",
    "Activity",
    "Dataset",
    "DomeSimulator",
    "Faults",
    "Fill",
    "WalletSpec",
    "activity_id",
    "order_id",
]
