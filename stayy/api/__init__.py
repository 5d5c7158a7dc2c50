"""Staff REST API of the job runtime: catalog, runs, run-now, pause and resume."""
