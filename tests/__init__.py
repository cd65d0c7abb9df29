"""Project-level tests (end to end); a package, so its modules are ``tests.*``."""
