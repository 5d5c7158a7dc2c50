"""Fault tests: PostgreSQL restarts, Redis outages, killed workers, against private servers."""
