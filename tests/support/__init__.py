"""Helpers the test suites share: real servers started for a test run."""
