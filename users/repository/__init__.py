"""All I/O of the users domain: ORM queries, the stats cache and the third-party service client.

Nothing else in the app touches the database, Redis or the network.
"""
