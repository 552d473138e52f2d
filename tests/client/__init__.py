"""Tests of the Python client: typed errors, connection options, sync and asyncio surfaces."""
