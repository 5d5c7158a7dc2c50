"""The API's request parsers: DRF's, with a multipart body that has no part refused.

RFC 2046 requires a multipart body to hold at least one part. Django reads a
body of only the closing boundary as an empty form, so a request that sent
nothing usable would be taken for one that changes nothing; here it is a 400.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import DataAndFiles, MultiPartParser


class StrictMultiPartParser(MultiPartParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> DataAndFiles:
        parsed = super().parse(stream, media_type, parser_context)
        if not parsed.data and not parsed.files:
            raise ParseError("A multipart body needs at least one part (RFC 2046).")
        return parsed
