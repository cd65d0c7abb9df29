"""target-bigquery for tap-dome (see target.py)."""
