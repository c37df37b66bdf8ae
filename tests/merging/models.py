"""Models of the merge tests: one of every kind of relation a merge must carry over.

``Person`` is merged (its duplicates share ``email``, a rule configured in the
tests); everything else references it in its own way.
"""

from __future__ import annotations

from typing import ClassVar

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone


class Passport(models.Model):
    objects: ClassVar[models.Manager[Passport]]  # seen by mypy: demo.settings does not install this app
    number = models.CharField(max_length=20)


class Group(models.Model):
    objects: ClassVar[models.Manager[Group]]  # seen by mypy: demo.settings does not install this app
    name = models.CharField(max_length=50)


class Club(models.Model):
    objects: ClassVar[models.Manager[Club]]  # seen by mypy: demo.settings does not install this app
    name = models.CharField(max_length=50)


class Person(models.Model):
    objects: ClassVar[models.Manager[Person]]  # seen by mypy: demo.settings does not install this app
    mentor_id: int | None
    passport_id: int | None
    email = models.CharField(max_length=100)
    name = models.CharField(max_length=100, blank=True)
    nickname = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    handle = models.CharField(max_length=50, unique=True, null=True, blank=True)  # noqa: DJ001
    mentor = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="mentees"
    )
    passport = models.OneToOneField(Passport, null=True, blank=True, on_delete=models.SET_NULL)
    groups = models.ManyToManyField(Group, blank=True, related_name="people")
    clubs = models.ManyToManyField(Club, through="ClubMembership", blank=True, related_name="people")
    created = models.DateTimeField(default=timezone.now)
    tags = GenericRelation("Tagged", object_id_field="object_id")

    def __str__(self) -> str:
        return self.email


class ClubMembership(models.Model):
    """A custom through model with its own data (role, joined)."""

    objects: ClassVar[models.Manager[ClubMembership]]  # seen by mypy: demo.settings does not install this app
    person_id: int
    club_id: int
    person = models.ForeignKey(Person, on_delete=models.CASCADE)
    club = models.ForeignKey(Club, on_delete=models.CASCADE)
    role = models.CharField(max_length=20, default="member")
    joined = models.DateField(null=True, blank=True)

    class Meta:
        unique_together = [("person", "club")]


class Order(models.Model):
    objects: ClassVar[models.Manager[Order]]  # seen by mypy: demo.settings does not install this app
    person_id: int
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="orders")
    total = models.DecimalField(max_digits=10, decimal_places=2, default=0)


class Invoice(models.Model):
    """References the person by ``handle`` (``to_field``); PROTECT, so a delete would refuse."""

    objects: ClassVar[models.Manager[Invoice]]  # seen by mypy: demo.settings does not install this app
    person_id: str | None
    person = models.ForeignKey(
        Person, to_field="handle", null=True, blank=True, on_delete=models.PROTECT, related_name="invoices"
    )
    amount = models.IntegerField(default=0)


class Profile(models.Model):
    """A reverse one-to-one: a person has at most one."""

    objects: ClassVar[models.Manager[Profile]]  # seen by mypy: demo.settings does not install this app
    person_id: int
    person = models.OneToOneField(Person, on_delete=models.CASCADE, related_name="profile")
    bio = models.TextField(blank=True)


class Seat(models.Model):
    """A child rule that holds data: a person's seat numbers are unique."""

    objects: ClassVar[models.Manager[Seat]]  # seen by mypy: demo.settings does not install this app
    person_id: int
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="seats")
    number = models.IntegerField()
    row = models.CharField(max_length=5, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["person", "number"], name="merging_seat_person_number")
        ]


class Badge(models.Model):
    """A nullable foreign key: rows with NULL are nobody's and must stay NULL."""

    objects: ClassVar[models.Manager[Badge]]  # seen by mypy: demo.settings does not install this app
    person_id: int | None
    person = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="badges"
    )
    code = models.CharField(max_length=20)


class Newsletter(models.Model):
    """The other side of an auto-created many-to-many."""

    objects: ClassVar[models.Manager[Newsletter]]  # seen by mypy: demo.settings does not install this app
    title = models.CharField(max_length=50)
    readers = models.ManyToManyField(Person, blank=True, related_name="newsletters")


class Note(models.Model):
    """A generic foreign key with no GenericRelation on the other side; integer object ids."""

    objects: ClassVar[models.Manager[Note]]  # seen by mypy: demo.settings does not install this app
    content_type_id: int
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    target = GenericForeignKey("content_type", "object_id")
    text = models.CharField(max_length=100)


class Tagged(models.Model):
    """A generic foreign key with text object ids and a GenericRelation (``Person.tags``); unique per object."""

    objects: ClassVar[models.Manager[Tagged]]  # seen by mypy: demo.settings does not install this app
    content_type_id: int
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.CharField(max_length=64)
    target = GenericForeignKey("content_type", "object_id")
    tag = models.CharField(max_length=30)

    class Meta:
        unique_together = [("content_type", "object_id", "tag")]


class Receipt(models.Model):
    """A foreign key with no reverse accessor (``related_name="+"``): only ``_meta`` of the holder sees it."""

    objects: ClassVar[models.Manager[Receipt]]  # seen by mypy: demo.settings does not install this app
    person_id: int
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="+")
    number = models.CharField(max_length=20)
