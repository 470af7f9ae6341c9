"""The DNS filter's UDP and TCP servers on asyncio, around one :class:`DnsHandler`.

Both transports hand raw messages to the same handler (dnslib's and dnspython's servers
keep this split too). UDP is read by hand, not through an asyncio transport: a readable
socket is drained in one go and each answer the handler can give at once is sent before
the next datagram is read (a transport costs a callback and a buffer check a datagram;
issue 4 "Figures" asks for unbound's CPU per query). Memory stays bounded under a flood: UDP input waits in the kernel's
socket buffer (the kernel drops the excess); questions waiting for upstream are at most
``max_pending`` (beyond, dropped and counted); replies the kernel cannot take yet are at
most ``max_send_buffer`` octets (beyond, dropped and counted); TCP connections are at most
``max_tcp_connections``, each answered one message at a time and closed when idle.

A question the handler has a ready answer for is answered without Python at all when the
C extension :mod:`esafety.filtering.dns._ready` is built (``setup.py``): it reads a batch
of datagrams with recvmmsg, answers the ready ones with sendmmsg from the handler's own
tables and hands the rest back (see ``_ready.c``). Without it, or with
``ServerSettings.fast_path`` off, the Python loop below answers the same, more slowly.

Sockets are made here, not by asyncio, so that N worker processes can each bind the same
address with SO_REUSEPORT and let the kernel spread clients across them (issue 4 §7, "uses
both cores").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any

from esafety.filtering.dns.handler import DnsHandler, PendingAnswer
from esafety.filtering.dns.wire import MAX_MESSAGE

try:
    from esafety.filtering.dns import _ready
except ImportError:  # built without a C compiler: the Python path answers everything
    _ready = None  # type: ignore[assignment]

__all__ = ["FAST_PATH_BUILT", "DnsServer", "ServerSettings", "bind_tcp", "bind_udp"]

#: Whether the C fast path was built (``pip install`` with a compiler).
FAST_PATH_BUILT = _ready is not None

log = logging.getLogger(__name__)
_LENGTH = struct.Struct("!H")
#: Datagrams answered per readable event before the loop runs anything else.
_BATCH = 256


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 5353  # high by default: no root needed (port 53 wants CAP_NET_BIND_SERVICE)
    reuse_port: bool = False
    max_pending: int = 4096
    max_send_buffer: int = 1 << 20
    max_tcp_connections: int = 256
    tcp_idle_timeout: float = 10.0  # RFC 7766 §6.2.3 suggests seconds, not minutes
    udp_receive_buffer: int = 4 << 20
    #: Answer ready questions in C when the extension is built (off: all in Python).
    fast_path: bool = True


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_udp(
    host: str, port: int, reuse_port: bool = False, receive_buffer: int = 0
) -> socket.socket:
    """A non-blocking UDP socket bound to ``host:port`` (0: any free port)."""
    sock = socket.socket(_family(host), socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if receive_buffer:
            # The kernel may grant less (net.core.rmem_max); that is still a bound.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_tcp(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A non-blocking listening TCP socket bound to ``host:port``."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _UdpReader:
    """Drains the UDP socket whenever it is readable and answers what it can at once.

    No asyncio transport: each readable event reads datagrams until the socket is empty
    (at most ``_BATCH``, so TCP and timers get their turn), and a question the ready
    answers, a block or the cache answers is sent back before the next is read. Replies
    the kernel cannot take yet wait in a queue of at most ``max_send_buffer`` octets.
    """

    def __init__(self, server: DnsServer, sock: socket.socket) -> None:
        self.server = server
        self.handler = server.handler
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.waiting: deque[tuple[bytes, tuple[str, int]]] = deque()
        self.waiting_octets = 0
        self.closed = False
        self.fast = (
            _ready.UdpFastPath(sock.fileno(), MAX_MESSAGE)
            if _ready is not None and server.settings.fast_path
            else None
        )

    def start(self) -> None:
        self.loop.add_reader(self.sock.fileno(), self.readable)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.sock.fileno())
        if self.waiting:
            self.loop.remove_writer(self.sock.fileno())
        self.waiting.clear()
        self.sock.close()

    def readable(self) -> None:
        fast = self.fast
        if fast is not None and not self.waiting:  # replies wait in order behind the queue
            table = self.handler.ready_table()
            if table is not None:
                self.readable_fast(fast, *table)
                return
        recvfrom = self.sock.recvfrom
        answer = self.answer
        for _ in range(_BATCH):
            try:
                data, addr = recvfrom(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # an ICMP error for an earlier reply: nothing to do
                log.debug("DNS filter UDP receive error: %s", error)
                continue
            answer(data, addr, None)

    def readable_fast(self, fast: Any, clients: dict[bytes, Any], ready_log: Any) -> None:
        """One batch through the C fast path; what it hands back is answered here."""
        others, unsent, answered, blocked, lost = fast.serve(clients, ready_log, _BATCH)
        if answered:
            self.handler.count_ready(answered, blocked)
        self.server.dropped_send += lost
        for reply, addr in unsent:
            self.queue(reply, addr)
        answer = self.answer
        for data, addr, raw in others:
            answer(data, addr, raw)
        # Not drained: the socket stays readable and the loop calls again.

    def answer(self, data: bytes, addr: tuple[str, int], raw: bytes | None) -> None:
        """Answer one datagram; ``raw`` (the client's address octets, from the fast path)
        lets the fast path answer this client's next ready question itself."""
        handler = self.handler
        # The clocks a datagram, not a batch: a decision is made at the time it is asked.
        now, mono = handler.times()
        try:
            result = handler.answer_udp(data, addr[0], now, mono)
        except Exception:  # answer_udp() never raises; if it ever does, keep serving
            log.exception("DNS filter: unexpected fault answering a datagram")
            return
        if result is None:
            return
        if type(result) is not bytes:
            self.forward(result, addr)  # type: ignore[arg-type]
            return
        if raw is not None:
            handler.remember_client(raw, addr[0])
        self.send(result, addr)

    def forward(self, pending: PendingAnswer, addr: tuple[str, int]) -> None:
        server = self.server
        if len(server.pending) >= server.settings.max_pending:
            self.handler.counters.dropped_busy += 1
            return
        task = self.loop.create_task(self._complete(pending, addr))
        server.pending.add(task)
        task.add_done_callback(server.pending.discard)

    async def _complete(self, pending: PendingAnswer, addr: tuple[str, int]) -> None:
        reply = await self.handler.complete(pending)
        if reply is not None:
            self.send(reply, addr)

    def send(self, reply: bytes, addr: tuple[str, int]) -> None:
        if self.closed:
            return
        if self.waiting:
            self.queue(reply, addr)
            return
        try:
            self.sock.sendto(reply, addr)
        except (BlockingIOError, InterruptedError):
            self.queue(reply, addr)
        except OSError as error:
            self.server.dropped_send += 1
            log.debug("DNS filter UDP send to %s failed: %s", addr[0], error)

    def queue(self, reply: bytes, addr: tuple[str, int]) -> None:
        if self.waiting_octets + len(reply) > self.server.settings.max_send_buffer:
            self.server.dropped_send += 1
            return
        if not self.waiting:
            self.loop.add_writer(self.sock.fileno(), self.writable)
        self.waiting.append((reply, addr))
        self.waiting_octets += len(reply)

    def writable(self) -> None:
        waiting, sendto = self.waiting, self.sock.sendto
        while waiting:
            reply, addr = waiting[0]
            try:
                sendto(reply, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                self.server.dropped_send += 1
                log.debug("DNS filter UDP send to %s failed: %s", addr[0], error)
            waiting.popleft()
            self.waiting_octets -= len(reply)
        self.loop.remove_writer(self.sock.fileno())


class DnsServer:
    """UDP and TCP on one address, answering through ``handler``."""

    def __init__(self, handler: DnsHandler, settings: ServerSettings | None = None) -> None:
        self.handler = handler
        self.settings = settings if settings is not None else ServerSettings()
        self.pending: set[asyncio.Task[None]] = set()
        self.dropped_send = 0
        self.refused_connections = 0
        self.tcp_connections = 0
        self._udp: _UdpReader | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        """Bind and start serving; with port 0 both transports share one free port."""
        s = self.settings
        udp, tcp = self._bind_pair()
        self._udp = _UdpReader(self, udp)
        self._udp.start()
        try:
            self._tcp = await asyncio.start_server(self._serve_connection, sock=tcp)
        except BaseException:
            self._udp.close()
            raise
        self.port = udp.getsockname()[1]
        log.info("DNS filter listening on %s port %d (UDP and TCP)", s.host, self.port)

    def _bind_pair(self) -> tuple[socket.socket, socket.socket]:
        s = self.settings
        for _attempt in range(20):
            udp = bind_udp(s.host, s.port, s.reuse_port, s.udp_receive_buffer)
            try:
                return udp, bind_tcp(s.host, udp.getsockname()[1], s.reuse_port)
            except OSError:
                udp.close()
                if s.port:
                    raise
        raise OSError(f"found no port free for both UDP and TCP on {s.host}")

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()  # at once: no transport closing on a later turn of the loop
        if self._tcp is not None:
            self._tcp.close()
        for task in (*self.pending, *self._connections):
            task.cancel()
        await asyncio.gather(*self.pending, *self._connections, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if self.tcp_connections >= self.settings.max_tcp_connections or task is None:
            self.refused_connections += 1
            writer.close()
            return
        self.tcp_connections += 1
        self._connections.add(task)
        try:
            await self._answer_messages(reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or stayed silent: its connection simply ends
        finally:
            self.tcp_connections -= 1
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _answer_messages(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Several queries per connection (RFC 7766 §6.2.1), each answered in turn."""
        peer = writer.get_extra_info("peername")
        client_ip = peer[0] if peer else ""
        idle = self.settings.tcp_idle_timeout
        handler = self.handler
        while True:
            async with asyncio.timeout(idle):
                prefix = await reader.readexactly(2)
                message = await reader.readexactly(_LENGTH.unpack(prefix)[0])
            reply = await handler.handle(message, client_ip, tcp=True)
            if reply is None:
                # Nothing sensible to say: a TCP client that sends garbage is hung up on.
                return
            writer.write(_LENGTH.pack(len(reply)) + reply)
            await writer.drain()
