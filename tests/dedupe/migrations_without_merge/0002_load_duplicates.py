from importlib import import_module

Migration = import_module("tests.dedupe.migrations.0002_load_duplicates").Migration
