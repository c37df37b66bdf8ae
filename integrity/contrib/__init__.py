"""Bridges to other tools a project may use; each module imports its tool only when the project does."""
