"""A sign-up view that answers the race its form can't see with a 400 and the field's error."""

from __future__ import annotations

from django import forms
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.template import Context, Template
from django.utils.text import slugify

import integrity
from tests.formerrors.models import Signup

PAGE = Template("{% for e in form.non_field_errors %}<p class=error>{{ e }}</p>{% endfor %}{{ form.as_p }}")


class SignupForm(forms.ModelForm):
    class Meta:
        model = Signup
        fields = ["username", "code", "email", "team", "nickname"]


def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST)
    if form.is_valid():
        signup = form.save(commit=False)
        signup.slug = slugify(signup.username)  # not a form field: validate_unique() never sees it
        try:
            with transaction.atomic():
                signup.save()
            return HttpResponse("created", status=201)
        except IntegrityError as exc:
            errors = integrity.field_errors(exc, instance=signup)
            if not errors:
                raise
            for field, messages in errors.items():
                form.add_error(field if field in form.fields else None, messages)
    return HttpResponse(PAGE.render(Context({"form": form})), status=400)
