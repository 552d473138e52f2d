"""Tests that run the examples/ programs against a real server process."""
