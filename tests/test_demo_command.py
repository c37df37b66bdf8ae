"""The README's demo command, for real: ``python manage.py demo`` in a subprocess, on a fresh database.

It migrates an empty database, loads the broken data and serves the admin; the
test logs in over HTTP with the printed credentials and gets
``/admin/integrity/``. This is what a newcomer runs first, on every Python and
Django of the CI matrix.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import urllib.parse
import urllib.request

from django.conf import settings

from demo import live

DATABASE = f"integrity_demo_command{os.environ.get('INTEGRITY_TEST_DB_SUFFIX', '')}"


def test_the_readme_demo_command_serves_the_dashboard() -> None:
    with (
        live.fresh_database(live.server_url(settings.DATABASES["default"]), DATABASE) as url,
        live.demo_server(url) as demo,
    ):
        output = demo.output
        assert "Admin login:  username 'admin'  password 'admin'" in output
        assert f"Open:         {demo.base}/admin/integrity/" in output
        # The system checks that stopped the demo on Django 6.x, and the missing static/ directory.
        assert "postgres.E005" not in output
        assert "staticfiles.W004" not in output

        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with opener.open(f"{demo.base}/admin/login/", timeout=30) as response:
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.read().decode())
        assert token
        form = {"csrfmiddlewaretoken": token[1], "username": "admin", "password": "admin"}
        with opener.open(
            f"{demo.base}/admin/login/?next=/admin/integrity/", urllib.parse.urlencode(form).encode(), 60
        ) as response:
            assert response.url == f"{demo.base}/admin/integrity/"
            page = response.read().decode()
        # The dashboard, under the demo site's own branding (templates/admin/base_site.html).
        assert "integrity demo" in page
        assert "Sequences" in page
        assert "behind" in page
        for stylesheet in ("demo/demo.css", "integrity/integrity.css"):
            with opener.open(f"{demo.base}/static/{stylesheet}", timeout=30) as response:
                assert response.status == 200
