"""Cluster tests: real gunicorn and ``runjobs`` processes sharing one database and one lease."""
