"""Reading a request body within the 500 KB limit, before and after gzip, without trusting either size.

The compressed bytes are capped while they stream in, and decompression is incremental with an output
cap, so a gzip bomb costs at most the limit in memory and is refused as soon as it crosses it.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Final

IDENTITY_ENCODINGS: Final = frozenset({"", "identity"})
COMPRESSED_ENCODINGS: Final = frozenset({"gzip", "x-gzip", "deflate"})
_GZIP_OR_ZLIB: Final = 32 + zlib.MAX_WBITS  # auto-detects the gzip or zlib header


class BodyTooLargeError(Exception):
    """The body, as sent or decompressed, is larger than the request limit (413)."""


class BodyEncodingError(Exception):
    """The body cannot be decoded (400), or its Content-Encoding is not supported (415)."""

    def __init__(self, message: str, status: int = 400, raw: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.raw = raw  # the bytes read so far, for the dead letter


class CappedDecompressor:
    """gzip/zlib stream decompression that stops once the output would pass ``limit`` bytes.

    Concatenated gzip members (allowed by RFC 1952) are decoded one after the other.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._decoder = zlib.decompressobj(_GZIP_OR_ZLIB)
        self._out = bytearray()

    def feed(self, chunk: bytes) -> None:
        data = chunk
        while data:
            room = self._limit - len(self._out)
            try:
                piece = self._decoder.decompress(data, room + 1)
            except zlib.error as exc:
                raise BodyEncodingError(f"body is not valid gzip ({exc})") from None
            self._out += piece
            if len(self._out) > self._limit:
                raise BodyTooLargeError(f"decompressed body larger than {self._limit} bytes")
            if not self._decoder.eof:
                return
            data = self._decoder.unused_data  # the next gzip member, if any
            if data:
                self._decoder = zlib.decompressobj(_GZIP_OR_ZLIB)

    def finish(self) -> bytes:
        if not self._decoder.eof:
            raise BodyEncodingError("gzip body is truncated")
        return bytes(self._out)


async def read_capped_body(chunks: AsyncIterator[bytes], content_encoding: str | None, limit: int) -> bytes:
    """The decoded body; the body as sent and as decoded are each capped at ``limit`` bytes.

    Raises ``BodyTooLargeError`` or ``BodyEncodingError`` (whose ``raw`` holds the bytes read so far, so
    the caller can dead-letter them).
    """
    encoding = (content_encoding or "").strip().lower()
    if encoding not in IDENTITY_ENCODINGS and encoding not in COMPRESSED_ENCODINGS:
        raise BodyEncodingError(f"unsupported Content-Encoding {encoding!r}: use gzip or none", status=415)
    decoder = CappedDecompressor(limit) if encoding in COMPRESSED_ENCODINGS else None
    raw = bytearray()
    async for chunk in chunks:
        if not chunk:
            continue
        raw += chunk
        if len(raw) > limit:
            raise BodyTooLargeError(f"request body larger than {limit} bytes")
        if decoder is not None:
            try:
                decoder.feed(chunk)
            except BodyEncodingError as exc:
                raise BodyEncodingError(str(exc), raw=bytes(raw)) from None
    if decoder is None:
        return bytes(raw)
    try:
        return decoder.finish()
    except BodyEncodingError as exc:
        raise BodyEncodingError(str(exc), raw=bytes(raw)) from None
