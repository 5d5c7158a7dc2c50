"""A demo of the third-party user service: a deterministic data set behind the contract of docs/upstream.md.

Run it with ``manage.py demo_upstream``; the tests and benchmarks start it as a
real process. It is a stand-in for development and tests: it has no models and
no URL of the served API, and the users app never imports it.
"""
