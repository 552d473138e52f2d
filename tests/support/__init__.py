"""Helpers shared by the test suites: opening backends, temporary databases."""
