"""Business logic of the users domain, shared by the REST API, the jobs and the commands.

* :mod:`users.services.accounts`: local users, API tokens, the user stats;
* :mod:`users.services.sync`: the sync from the third-party user service
  (its page loop and pacing), with the rules per record in
  :mod:`users.services.sync_records`.
"""
