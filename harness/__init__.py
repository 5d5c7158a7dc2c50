"""The harness of the tests, the benchmarks and the scripts: free ports, child environments, child processes.

Development tooling, not part of the service (the package is not installed with it). It imports
no Django: the scripts and the benchmarks use it before they set Django up.
"""
