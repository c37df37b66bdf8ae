"""One model with every way Django declares a unique rule, each with the message it would give a form."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models.functions import Lower


class Signup(models.Model):
    objects: ClassVar[models.Manager[Signup]]  # seen by mypy: demo.settings does not install this app
    username = models.CharField(
        max_length=50, unique=True, error_messages={"unique": "That username is taken."}
    )
    slug = models.SlugField(max_length=50)
    code = models.CharField(max_length=20)
    email = models.CharField(max_length=100)
    team = models.CharField(max_length=50)
    nickname = models.CharField(max_length=50)
    invite = models.CharField(max_length=20, blank=True)
    sponsor = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE)

    class Meta:
        unique_together = [("team", "nickname")]
        constraints = [
            models.UniqueConstraint(fields=["slug"], name="formerrors_slug"),  # the model's default message
            models.UniqueConstraint(
                fields=["code"],
                name="formerrors_code",
                violation_error_message="That code is in use.",
                violation_error_code="unique",
            ),
            models.UniqueConstraint(
                Lower("email"),
                name="formerrors_email_ci",
                violation_error_message="That e-mail is registered.",
            ),
            models.UniqueConstraint(
                fields=["invite"], condition=~models.Q(invite=""), name="formerrors_invite_used"
            ),
        ]
