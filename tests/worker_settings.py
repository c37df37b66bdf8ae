"""Settings of a task worker process the jobs tests start: the test settings on the test databases.

The test process passes, as JSON in the environment, the names of its test
databases (``INTEGRITY_WORKER_DB_NAMES``) and the settings its tests override
(``INTEGRITY_WORKER_SETTINGS``): a worker cannot see ``override_settings``.
"""

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

for _alias, _name in json.loads(os.environ.get("INTEGRITY_WORKER_DB_NAMES", "{}")).items():
    DATABASES[_alias]["NAME"] = _name
globals().update(json.loads(os.environ.get("INTEGRITY_WORKER_SETTINGS", "{}")))
