"""`pods/portforward` as kubectl 1.31+ speaks it: SPDY/3.1 framing tunnelled through a WebSocket.

kubectl upgrades to a WebSocket with the subprotocol `SPDY/3.1+portforward.k8s.io` and then speaks
SPDY over it (each WebSocket message carries bytes of the SPDY stream). For every local connection it
opens two SPDY streams with headers `streamtype` (`error`, then `data`), `port` and `requestid`; the
server connects the data stream to the pod's IP and port and finishes the error stream (FIN, or an
error message first) when the connection is over. Header blocks are zlib streams, one per direction,
primed with the SPDY/3 dictionary (SPDY draft 3, section 2.6.10.1). Flow control is not enforced,
as kubectl's SPDY library (spdystream) does not enforce it either.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from .errors import ApiError

PROTOCOL = "SPDY/3.1+portforward.k8s.io"
VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
_CHUNK = 32768

DICTIONARY = (
    b'\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03p'
    b'ut\x00\x00\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00'
    b'\x00\x00\x0eaccept-charset\x00\x00\x00\x0faccept-enco'
    b'ding\x00\x00\x00\x0faccept-language\x00\x00\x00\raccep'
    b't-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\rauth'
    b'orization\x00\x00\x00\rcache-control\x00\x00\x00\nco'
    b'nnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10cont'
    b'ent-encoding\x00\x00\x00\x10content-language'
    b'\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-lo'
    b'cation\x00\x00\x00\x0bcontent-md5\x00\x00\x00\rcontent'
    b'-range\x00\x00\x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00'
    b'\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expires\x00\x00\x00\x04f'
    b'rom\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-mo'
    b'dified-since\x00\x00\x00\rif-none-match\x00\x00\x00'
    b'\x08if-range\x00\x00\x00\x13if-unmodified-since'
    b'\x00\x00\x00\rlast-modified\x00\x00\x00\x08location\x00\x00\x00'
    b'\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy'
    b'-authenticate\x00\x00\x00\x13proxy-authoriza'
    b'tion\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretr'
    b'y-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trail'
    b'er\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgra'
    b'de\x00\x00\x00\nuser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00'
    b'\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00'
    b'\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200'
    b' OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03ur'
    b'l\x00\x00\x00\x06public\x00\x00\x00\nset-cookie\x00\x00\x00\nkee'
    b'p-alive\x00\x00\x00\x06origin100101201202205'
    b'20630030230330430530630740240540'
    b'64074084094104114124134144154164'
    b'17502504505203 Non-Authoritative'
    b' Information204 No Content301 Mo'
    b'ved Permanently400 Bad Request40'
    b'1 Unauthorized403 Forbidden404 N'
    b'ot Found500 Internal Server Erro'
    b'r501 Not Implemented503 Service '
    b'UnavailableJan Feb Mar Apr May J'
    b'un Jul Aug Sept Oct Nov Dec 00:0'
    b'0:00 Mon, Tue, Wed, Thu, Fri, Sa'
    b't, Sun, GMTchunked,text/html,ima'
    b'ge/png,image/jpg,image/gif,appli'
    b'cation/xml,application/xhtml+xml'
    b',text/plain,text/javascript,publ'
    b'icprivatemax-age=gzip,deflate,sd'
    b'chcharset=utf-8charset=iso-8859-'
    b'1,utf-,*,enq=0.'
)


def _header_block(headers: dict[str, str]) -> bytes:
    parts = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        parts += [struct.pack(">I", len(name)), name.encode(), struct.pack(">I", len(value)), value.encode()]
    return b"".join(parts)


def _parse_headers(block: bytes) -> dict[str, str]:
    (count,), offset, headers = struct.unpack_from(">I", block), 4, {}
    for _ in range(count):
        (length,) = struct.unpack_from(">I", block, offset)
        name = block[offset + 4:offset + 4 + length].decode()
        offset += 4 + length
        (length,) = struct.unpack_from(">I", block, offset)
        headers[name] = block[offset + 4:offset + 4 + length].decode()
        offset += 4 + length
    return headers


@dataclass
class _Forward:
    """One forwarded connection: its error stream and data stream, and the TCP connection to the pod."""

    error_stream: int = 0
    data_stream: int = 0
    writer: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class _Session:
    def __init__(self, ws: web.WebSocketResponse, host: str) -> None:
        self.ws, self.host = ws, host
        self.inflate = zlib.decompressobj(zdict=DICTIONARY)
        self.deflate = zlib.compressobj(zdict=DICTIONARY)
        self.forwards: dict[str, _Forward] = {}
        self.by_stream: dict[int, _Forward] = {}
        self.lock = asyncio.Lock()

    async def _send(self, frame: bytes) -> None:
        async with self.lock:
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await self.ws.send_bytes(frame)

    async def _control(self, kind: int, flags: int, payload: bytes) -> None:
        await self._send(struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload)

    async def _data(self, stream: int, data: bytes, fin: bool = False) -> None:
        await self._send(struct.pack(">II", stream & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data)

    async def _reply(self, stream: int) -> None:
        block = self.deflate.compress(_header_block({})) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        await self._control(SYN_REPLY, 0, struct.pack(">I", stream) + block)

    async def run(self) -> None:
        buffer = bytearray()
        async for message in self.ws:
            if message.type != WSMsgType.BINARY:
                continue
            buffer += message.data
            while len(buffer) >= 8:
                (length,) = struct.unpack_from(">I", buffer, 4)
                length &= 0xFFFFFF
                if len(buffer) < 8 + length:
                    break
                frame, buffer = bytes(buffer[:8 + length]), buffer[8 + length:]
                await self._frame(frame)
        for forward in self.forwards.values():
            self._close(forward)

    async def _frame(self, frame: bytes) -> None:
        first, second, flags_length = struct.unpack_from(">HHI", frame)
        flags, payload = flags_length >> 24, frame[8:]
        if not first & 0x8000:  # a data frame: first two words are the stream id
            forward = self.by_stream.get(((first << 16) | second) & 0x7FFFFFFF)
            if forward is not None and forward.writer is not None:
                if payload:
                    forward.writer.write(payload)
                    with contextlib.suppress(ConnectionError):
                        await forward.writer.drain()
                if flags & FLAG_FIN and forward.writer.can_write_eof():
                    forward.writer.write_eof()
            return
        if second == SYN_STREAM:
            (stream,) = struct.unpack_from(">I", payload)
            headers = _parse_headers(self.inflate.decompress(payload[10:]))
            await self._open(stream & 0x7FFFFFFF, headers)
        elif second == PING:
            await self._control(PING, 0, payload[:4])
        elif second == RST_STREAM:
            (stream,) = struct.unpack_from(">I", payload)
            forward = self.by_stream.get(stream & 0x7FFFFFFF)
            if forward is not None:
                self._close(forward)
        elif second == GOAWAY:
            await self.ws.close()

    async def _open(self, stream: int, headers: dict[str, str]) -> None:
        forward = self.forwards.setdefault(headers.get("requestid", ""), _Forward())
        self.by_stream[stream] = forward
        await self._reply(stream)
        if headers.get("streamtype") == "error":
            forward.error_stream = stream
            return
        forward.data_stream = stream
        port = int(headers.get("port", "0"))
        try:
            reader, forward.writer = await asyncio.open_connection(self.host, port)
        except OSError as error:
            message = f"error forwarding port {port} to pod: {error}"
            await self._data(forward.error_stream, message.encode(), fin=True)
            await self._data(stream, b"", fin=True)
            return
        forward.tasks.append(asyncio.create_task(self._pump(reader, forward)))

    async def _pump(self, reader: asyncio.StreamReader, forward: _Forward) -> None:
        """Pod → client, then the end of both streams of this connection."""
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(_CHUNK):
                await self._data(forward.data_stream, chunk)
        await self._data(forward.data_stream, b"", fin=True)
        await self._data(forward.error_stream, b"", fin=True)

    def _close(self, forward: _Forward) -> None:
        for task in forward.tasks:
            task.cancel()
        if forward.writer is not None:
            forward.writer.close()


async def serve_port_forward(request: web.Request, host: str) -> web.WebSocketResponse:
    """Forward each connection's port (its data stream's `port` header) to `host`, the pod's IP, until
    kubectl hangs up."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise ApiError(400, f"Upgrade request required: port-forward is served over WebSockets ({PROTOCOL})")
    ws = web.WebSocketResponse(protocols=(PROTOCOL,), heartbeat=None)
    await ws.prepare(request)
    await _Session(ws, host).run()
    return ws
