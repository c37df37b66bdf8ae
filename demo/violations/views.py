"""Pages that each raise a real IntegrityError (POST), to see the middleware turn them into events.

Every page sets up what it needs first, so it fails the same way on every
visit, then makes the mistake of one of the demo's stories or one kind of
constraint. Nothing here catches the error, except the "handled" page, which
does what the check-then-create story recommends (try the insert, catch the
error, fetch the row).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from demo.clinic.models import Doctor
from demo.shop.models import Product
from demo.violations.models import Account, Booking, Coupon, Invoice, Member, NumberedTicket

TAKEN = "taken@example.com"
MISSING_MEMBER = 2_000_000_000
NOON = datetime(2030, 1, 1, 12, tzinfo=UTC)

PAGES = [
    (
        "sequence",
        "23505",
        _(
            "Duplicate primary key: a data migration gave shop.Product explicit ids; its sequence stayed behind"
        ),
    ),
    (
        "hidden-row",
        "23505",
        _("Duplicate primary key: save() of a row clinic.Doctor's base manager hides"),
    ),
    ("ticket-race", "23505", _("MAX(number) + 1 ticket numbers, two requests at once")),
    ("unique", "23505", _("Sign up with an email already taken (a unique field)")),
    (
        "handled",
        "23505",
        _("The same, caught and answered with the existing row (insert, then fetch): a handled event"),
    ),
    ("foreign-key", "23503", _("An invoice for a member that does not exist, found at COMMIT (deferred)")),
    ("not-null", "23502", _("A member without a nickname (NOT NULL)")),
    ("check", "23514", _("An account with a negative balance (CHECK)")),
    ("exclusion", "23P01", _("Two bookings that overlap (EXCLUDE USING gist)")),
    ("nested", "23505", _("The taken email again, three atomic blocks deep")),
    ("async", "23505", _("An async view signs up a taken email")),
    (
        "sequence-max",
        "2200H",
        _("A sequence at its maximum: violations.Coupon's integer id ran out (DataError)"),
    ),
]


def index(request: HttpRequest) -> HttpResponse:
    """One button per page; runs no query."""
    return render(request, "violations/index.html", {"pages": PAGES})


def _done(what: str) -> HttpResponse:
    # Reached only when the database let the mistake through.
    return HttpResponse(f"No IntegrityError: {what}\n", content_type="text/plain")


@require_POST
def sequence_behind(request: HttpRequest) -> HttpResponse:
    """A data migration wrote explicit ids: the next id the sequence hands out is already taken."""
    with connection.cursor() as cursor:
        # Peek at the next value without consuming it.
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('shop_product', 'id'), "
            "nextval(pg_get_serial_sequence('shop_product', 'id')), false)"
        )
        next_id = cursor.fetchone()[0]
    if not Product.objects.filter(pk=next_id).exists():
        Product.objects.create(id=next_id, name=f"Imported {next_id}", price=1)  # the sequence stays behind
    Product.objects.create(name="New product", price=1)
    return _done("the product got a free id")


@require_POST
def hidden_row(request: HttpRequest) -> HttpResponse:
    """A filtering base manager: it shows only the current locale's doctors; saving another one INSERTs."""
    doctor = Doctor.everyone.filter(locale="fr").first() or Doctor.everyone.create(
        name="Dr. Benoît", locale="fr"
    )
    doctor.name = "Dr. Benoît (renamed)"
    doctor.save()  # UPDATE ... WHERE locale = 'en' matches nothing: INSERT with the existing id
    return _done("the doctor was updated")


@require_POST
def ticket_race(request: HttpRequest) -> HttpResponse:
    """MAX + 1 numbering: save() computes the number in Python; a request in the gap computes the same one."""
    ticket = NumberedTicket(subject=f"Ticket by {request.user}")
    ticket.gap = min(float(request.GET.get("sleep", "0.5")), 5)
    ticket.save()
    return _done(f"ticket #{ticket.number} created")


def _taken() -> None:
    Member.objects.get_or_create(email=TAKEN, defaults={"nickname": "first"})


@require_POST
def unique(request: HttpRequest) -> HttpResponse:
    """A sign-up form (email, password): the email is already taken. The password is never stored."""
    _taken()
    Member.objects.create(email=request.POST.get("email") or TAKEN, nickname=str(request.user)[:50])
    return _done("the member signed up")


@require_POST
def handled(request: HttpRequest) -> HttpResponse:
    """Check-then-create done right: insert, and on the unique violation fetch the row that won."""
    _taken()
    try:
        with transaction.atomic():
            member = Member.objects.create(email=TAKEN, nickname="second")
    except IntegrityError:
        member = Member.objects.get(email=TAKEN)
    return HttpResponse(f"Member {member.pk}: {member.email}\n", content_type="text/plain")


@require_POST
def foreign_key(request: HttpRequest) -> HttpResponse:
    """The INSERT succeeds; the deferred foreign key fails when the block commits."""
    with transaction.atomic():
        Invoice.objects.create(member_id=MISSING_MEMBER, total=10)
    return _done("the invoice was created")


@require_POST
def not_null(request: HttpRequest) -> HttpResponse:
    Member.objects.create(email="nobody@example.com", nickname=None)  # type: ignore[misc]
    return _done("the member was created")


@require_POST
def check(request: HttpRequest) -> HttpResponse:
    Account.objects.create(name="Overdrawn", balance=-1)
    return _done("the account was created")


@require_POST
def exclusion(request: HttpRequest) -> HttpResponse:
    during = DateTimeTZRange(NOON, NOON + timedelta(hours=1))
    if not Booking.objects.filter(during=during).exists():
        Booking.objects.create(during=during)
    Booking.objects.create(during=DateTimeTZRange(NOON + timedelta(minutes=30), NOON + timedelta(hours=2)))
    return _done("the booking was made")


@transaction.non_atomic_requests  # Django refuses ATOMIC_REQUESTS for async views
@require_POST
async def async_unique(request: HttpRequest) -> HttpResponse:
    await Member.objects.aget_or_create(email=TAKEN, defaults={"nickname": "first"})
    await Member.objects.acreate(email=TAKEN, nickname="async")
    return _done("the member signed up")


@require_POST
def nested(request: HttpRequest) -> HttpResponse:
    """A unique violation three atomic blocks deep (savepoints inside the request's transaction)."""
    _taken()
    with transaction.atomic(), transaction.atomic(), transaction.atomic():
        Member.objects.create(email=TAKEN, nickname="nested")
    return _done("the member signed up")


@require_POST
def sequence_max(request: HttpRequest) -> HttpResponse:
    """The outage itself: the integer id's sequence has handed out its last value, 2147483647."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(s.seqrelid, s.seqmax, true) FROM pg_sequence s "
            "WHERE s.seqrelid = pg_get_serial_sequence('violations_coupon', 'id')::regclass"
        )
    Coupon.objects.create(code="SPRING")  # nextval: reached maximum value of sequence
    return _done("the coupon was created")
