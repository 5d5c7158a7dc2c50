"""A harness-only app with the slow test jobs, installed only by ``harness.cluster.settings``."""
