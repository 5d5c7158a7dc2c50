"""Counts the requests in flight in this process (:mod:`stayy.runtime.activity`); put it first."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from stayy.runtime import activity


class RequestActivityMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        activity.handler_loaded()

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        activity.request_started()
        try:
            return self.get_response(request)
        finally:
            activity.request_finished()
