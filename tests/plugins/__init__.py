"""Test-only trainer plugins, loaded by path as a user would.

For example ``trainer: {name: "tests.plugins.flaky:FlakyTableTrainer"}``.
"""
