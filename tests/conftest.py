"""Fixtures shared by every test suite; suite-specific fixtures live in each suite's conftest.py."""
