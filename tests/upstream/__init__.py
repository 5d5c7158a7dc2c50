"""Tests of the third-party user service: its contract, the demo, the client, the sync and its job."""
