# The ticket story's MAX + 1 numbering, on a proxy of helpdesk.Ticket (no table of its own).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0002_ticket_sequence"),
        ("violations", "0002_coupon"),
    ]

    operations = [
        migrations.CreateModel(
            name="NumberedTicket",
            fields=[],
            options={
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("helpdesk.ticket",),
        ),
    ]
