"""Types of the C extension built from _ready.c (see esafety/filtering/dns/server.py)."""

from typing import Any

BATCH: int

class LogBuffer:
    def __init__(self, capacity: int) -> None: ...
    @property
    def pending(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    def take(self) -> tuple[bytes, bytes, list[Any], bytes, list[Any]] | None: ...
    def discard(self) -> int: ...

class UdpFastPath:
    def __init__(self, fd: int, message_size: int) -> None: ...
    def serve(
        self, clients: dict[bytes, Any], log: LogBuffer | None, limit: int, /
    ) -> tuple[
        list[tuple[bytes, tuple[Any, ...], bytes | None]],
        list[tuple[bytes, tuple[Any, ...]]],
        int,
        int,
        int,
    ]: ...
