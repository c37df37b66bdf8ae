"""What only the database knows: tables without a model (schema ``legacy``) and indexes of no rule."""

from django.db import migrations

FORWARD = '''
CREATE SCHEMA legacy;
CREATE TABLE legacy.org_links (
    id serial PRIMARY KEY,
    on_cascade bigint REFERENCES shapes_org (id) ON DELETE CASCADE,
    on_set_null bigint REFERENCES shapes_org (id) ON DELETE SET NULL,
    on_set_default bigint DEFAULT NULL REFERENCES shapes_org (id) ON DELETE SET DEFAULT,
    on_restrict bigint REFERENCES shapes_org (id) ON DELETE RESTRICT,
    on_no_action bigint REFERENCES shapes_org (id) ON DELETE NO ACTION,
    by_code varchar(20) REFERENCES shapes_org (code) ON DELETE CASCADE,
    note text
);
CREATE TABLE legacy."org ""badge%""" (
    id bigserial PRIMARY KEY,
    org_id bigint NOT NULL UNIQUE REFERENCES shapes_org (id) ON DELETE CASCADE,
    color text
);
CREATE TABLE legacy.org_profile (
    org_id bigint PRIMARY KEY REFERENCES shapes_org (id) ON DELETE CASCADE,
    bio text
);
CREATE TABLE legacy.place_visits (
    id serial PRIMARY KEY,
    place_id bigint REFERENCES shapes_place (id) ON DELETE CASCADE,
    restaurant_id bigint REFERENCES shapes_restaurant (place_ptr_id) ON DELETE CASCADE,
    pizzeria_id bigint REFERENCES shapes_pizzeria (restaurant_ptr_id) ON DELETE SET NULL
);
CREATE TABLE legacy.lonely_notes (
    lonely_id bigint REFERENCES shapes_lonely (id) ON DELETE CASCADE,
    body text
);
ALTER TABLE shapes_pair ADD CONSTRAINT shapes_pair_id_code UNIQUE (id, code);
CREATE TABLE legacy.pair_refs (
    id serial PRIMARY KEY,
    pair_id bigint,
    pair_code varchar(20),
    FOREIGN KEY (pair_id, pair_code) REFERENCES shapes_pair (id, code) ON DELETE CASCADE
);
CREATE UNIQUE INDEX shapes_seat_org_number_db_only ON shapes_seat (org_id, number);
CREATE UNIQUE INDEX shapes_seat_org_lower_label ON shapes_seat (org_id, lower(label)) WHERE label <> '';
'''

BACKWARD = """
DROP SCHEMA legacy CASCADE;
DROP INDEX shapes_seat_org_number_db_only;
DROP INDEX shapes_seat_org_lower_label;
ALTER TABLE shapes_pair DROP CONSTRAINT shapes_pair_id_code;
"""


class Migration(migrations.Migration):
    dependencies = [("shapes", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
