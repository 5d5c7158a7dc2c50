"""All I/O of the job runtime: run rows, the job catalog and the leader lease."""
