"""Pagination of the users API: the default page size, adjustable per request up to a cap."""

from config.pagination import StrictPageNumberPagination


class UserPagination(StrictPageNumberPagination):
    """``?page=`` and ``?page_size=`` (settings' PAGE_SIZE by default, 1 to 200; else a 400)."""

    # A cap keeps one request from serialising the whole table.
    max_page_size = 200
