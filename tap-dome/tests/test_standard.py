"""singer-sdk's standard tap tests, against a simulator started for this module."""

from __future__ import annotations

import atexit

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from dome_simulator import Dataset, DomeSimulator, WalletSpec
from tap_dome.tap import TapDome

# The first wallet splits, merges and redeems, so `activity` has rows to return.
_SIM = DomeSimulator(
    dataset=Dataset.custom([WalletSpec(120, activity=6), 40, 0, 1], seed=17),
    api_key="standard-key",
)
_SIM.start()
atexit.register(_SIM.stop)

TestTapDome = get_tap_test_class(
    tap_class=TapDome,
    config={
        "api_key": "standard-key",
        "api_url": _SIM.base_url,
        "wallets": _SIM.wallets,
        "start_date": "2020-01-01T00:00:00Z",
        "page_size": 50,
        "requests_per_second": 1000,
        "requests_per_10_seconds": 10000,
    },
    # The SDK's dry run stops every stream after a few records, so the orders stream never
    # completes and the audit (which only counts wallets whose orders read completed in the
    # same run) rightly has nothing to say; tap-dome/tests/test_streams.py tests it.
    suite_config=SuiteConfig(ignore_no_records_for_streams=["wallet_audits"]),
)
