"""The release with MergeDuplicates, on data where one group's memberships need a human choice."""

from importlib import import_module

Migration = import_module("tests.dedupe.migrations.0001_initial").Migration
