"""Test-only trainer plugins, loaded by path as a user would: ``trainer: {name: "tests.plugins.flaky:FlakyTableTrainer"}``."""
