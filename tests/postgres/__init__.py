"""Tests of the PostgreSQL backend beyond the shared contract: replicas, migrations, outages, plans."""
