"""``IntegrityErrorMiddleware``: every IntegrityError that escapes a view becomes an event.

So does the DataError of a sequence that ran out (``nextval: reached maximum
value of sequence``, SQLSTATE 2200H; ``integer out of range``, 22003).
The error then goes on exactly as without the middleware: ``process_exception``
returns None, so the response, Django's logging and any other error reporting
see the same exception. Requests that raise nothing cost nothing but a check
of one setting: no query. With ``INTEGRITY_CAPTURE_HANDLED`` the errors that
the application caught meanwhile (``get_or_create``'s retry, say) are recorded
too, as handled, once the response is made (outside the request's
transaction). Sync and async capable.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.db import DataError, IntegrityError
from django.http import HttpRequest, HttpResponseBase

from integrity.conf import settings
from integrity.events import recording as events


class IntegrityErrorMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        # When the request began (no query): failing requests that overlap in time are concurrent.
        setattr(request, events.STARTED, time.time())
        if self.async_mode:
            return self.__acall__(request)
        if not settings.CAPTURE_HANDLED:  # the common case: nothing to do unless the view raises
            return self.get_response(request)
        with events.collecting() as seen:
            response = self.get_response(request)
        if seen:
            events.record_handled(seen, request)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        if not settings.CAPTURE_HANDLED:
            return await get_response(request)
        with events.collecting() as seen:
            response = await get_response(request)
        if seen:
            await sync_to_async(events.record_handled)(seen, request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if isinstance(exception, IntegrityError | DataError):  # DataErrors: a sequence's only (record says)
            events.record(exception, request=request)
