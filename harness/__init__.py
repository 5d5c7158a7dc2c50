"""The harness of the tests, the benchmarks and the scripts: free ports, child environments, child processes.

Development tooling, not part of the service (the package is not installed with it). Its top-level
modules import no Django: the scripts and the benchmarks use them before they set Django up.
:mod:`harness.cluster` (a cluster of service processes and the checks on what it did) and
:mod:`harness.faults` (private servers, fault rigs and scenarios) read the service's database
through Django, save the constants of ``harness.cluster`` and ``harness.faults.servers``. Nothing
here imports the tests.
"""
