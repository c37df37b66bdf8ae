from django.db import migrations

from integrity.operations import ResyncSequences
from tests.dedupe.data import load


class Migration(migrations.Migration):
    dependencies = [("dedupe", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop), ResyncSequences("dedupe")]
