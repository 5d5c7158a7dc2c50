"""Pagination of the users API: the default page size, adjustable per request up to a cap."""

from rest_framework.pagination import PageNumberPagination


class UserPagination(PageNumberPagination):
    """``?page=`` and ``?page_size=`` (settings' PAGE_SIZE by default, at most 200)."""

    page_size_query_param = "page_size"
    # A cap keeps one request from serialising the whole table.
    max_page_size = 200
