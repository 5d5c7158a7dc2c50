"""Process-level runtime: where the embedded job server starts and stops."""
