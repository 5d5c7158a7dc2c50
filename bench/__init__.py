"""Benchmarks of the Stayy service (not tests): see bench/README.md."""
