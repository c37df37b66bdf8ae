"""The same release without MergeDuplicates: the constraint meets the duplicates."""

from importlib import import_module

Migration = import_module("tests.dedupe.migrations.0001_initial").Migration
