"""Admin of the job runtime: the job catalog, the run history, the leader lease and the alerts.

Everything here is read-only: the tables are written by the job servers. The
only actions are the services' commands, which queue or flag work for the
leader. One module per page family; importing them registers the pages.
"""

from stayy.admin import alerts, jobs, leases, runs  # noqa: F401  (registers the ModelAdmins)
