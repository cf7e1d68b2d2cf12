"""Tests of `seed.stages`, one file per stage (a package: tests/core has a test_purify.py too)."""
