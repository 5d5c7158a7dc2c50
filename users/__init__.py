"""The users domain: accounts, their stats and the sync from the upstream user service."""
