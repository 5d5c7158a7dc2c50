"""A test-only app with one slow job, installed only by ``tests.cluster.settings``."""
