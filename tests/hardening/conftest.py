from hardening_fixtures import cwd  # noqa: F401  (the fixture, for every hardening test)
