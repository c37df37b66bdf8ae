"""Seed 003's fix: ticket numbers from a database sequence, not MAX + 1."""

from django.db import migrations

SQL = """
CREATE SEQUENCE ticket_sequence OWNED BY helpdesk_ticket.number;
ALTER TABLE helpdesk_ticket ALTER COLUMN number SET DEFAULT nextval('ticket_sequence');
"""
REVERSE = """
ALTER TABLE helpdesk_ticket ALTER COLUMN number DROP DEFAULT;
DROP SEQUENCE ticket_sequence;
"""


class Migration(migrations.Migration):
    dependencies = [("helpdesk", "0001_initial")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
