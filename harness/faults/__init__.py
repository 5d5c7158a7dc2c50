"""Fault runs: private PostgreSQL and Redis servers, a rig around them, HTTP load, and the scenarios.

Used by the fault tests (``tests/faults/``, short runs) and ``scripts/faults.py``
(full length). :mod:`harness.faults.servers` imports no Django; the rig and the
scenarios read the rig's database through Django (import them after ``django.setup()``).
"""
