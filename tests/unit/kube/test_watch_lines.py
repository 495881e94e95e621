"""Watch streams are split into lines by the client, not by aiohttp's 512 KiB line reader.

The bytes go through aiohttp's real StreamReader, fed as a connection would feed it.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp.base_protocol import BaseProtocol

from zenwatcher.kube import client, errors


def stream(*chunks: bytes) -> aiohttp.StreamReader:
    loop = asyncio.get_running_loop()
    # A high-water mark above what a test feeds: nothing reads the socket, so never pause.
    reader = aiohttp.StreamReader(BaseProtocol(loop), 2**24, loop=loop)
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    return reader


async def lines(reader: aiohttp.StreamReader, *, limit: int = 1024) -> list[bytes]:
    return [line async for line in client._lines(reader, path="/watched", limit=limit)]


async def test_lines_across_chunks() -> None:
    """Lines split across chunks are joined, empty lines kept, the last one without newline."""
    assert [b"ab", b"cdef", b"", b"gh", b"ij"] == await lines(
        stream(b"ab\ncd", b"ef\n", b"\ngh\ni", b"j")
    )


async def test_line_longer_than_aiohttp_reader_limit() -> None:
    """A 1 MiB line (aiohttp's readline stops at 512 KiB) arrives whole."""
    big = b"x" * 2**20
    chunks = [big[i : i + 65536] for i in range(0, len(big), 65536)]
    assert [big, b"tail"] == await lines(stream(*chunks, b"\ntail\n"), limit=2 * 2**20)


async def test_line_over_limit_is_a_transport_error() -> None:
    """A line past the bound ends the stream with a message naming the path, no MemoryError."""
    with pytest.raises(errors.TransportError, match="/watched: a line is longer than 100 bytes"):
        await lines(stream(b"y" * 64, b"y" * 64), limit=100)
