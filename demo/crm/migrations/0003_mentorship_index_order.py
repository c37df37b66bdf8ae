"""A hand-made unique index for Mentorship, in the other column order.

``unique_together = [("mentee", "mentor")]`` made UNIQUE (mentee_id, mentor_id);
it was replaced by an index on (mentor_id, mentee_id), e.g. to serve lookups
by mentor. Uniqueness is the same: the rule is still enforced (a tool that
compares column lists in order reports a false "missing" here).
"""

from django.db import migrations

REPLACE_WITH_MENTOR_FIRST = """
DO $$
DECLARE
    name text;
BEGIN
    FOR name IN
        SELECT con.conname
        FROM pg_constraint con
        WHERE con.conrelid = 'crm_mentorship'::regclass AND con.contype = 'u'
    LOOP
        EXECUTE format('ALTER TABLE crm_mentorship DROP CONSTRAINT %I', name);
    END LOOP;
END
$$;
CREATE UNIQUE INDEX crm_mentorship_mentor_mentee_uniq ON crm_mentorship (mentor_id, mentee_id);
"""

RESTORE_MENTEE_FIRST = """
DROP INDEX crm_mentorship_mentor_mentee_uniq;
ALTER TABLE crm_mentorship ADD CONSTRAINT crm_mentorship_mentee_mentor_uniq UNIQUE (mentee_id, mentor_id);
"""


class Migration(migrations.Migration):
    dependencies = [("crm", "0002_company_vat_number_drift")]
    operations = [migrations.RunSQL(REPLACE_WITH_MENTOR_FIRST, RESTORE_MENTEE_FIRST)]
