"""Project-level tests (end to end); a package so its conftest is `tests.conftest`, not `conftest`."""
