"""integrity: data-integrity dashboard for Django + PostgreSQL, in the admin."""

__version__ = "0.1.0"
