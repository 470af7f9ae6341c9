"""DNS wire format for the filter's hot path: the question read by hand, answers packed by hand.

A general DNS library costs about 39 µs to parse a packet (issue 4, "Figures"); reading the
one question of an ordinary query by hand costs a few. So this module reads exactly what the
filter needs (RFC 1035 §4.1 header and question, the RFC 6891 OPT record) and refuses
everything else with an exception that says which rung of the failure ladder applies:
:class:`DropPacket` (not even a readable header, or not a query) or :class:`RejectQuery`
(a readable header: answer with the rcode it carries).

Names are never followed through compression pointers in the question: it is the first
name of the message, so a pointer there can only point into the header or at itself (the
classic pointer loop). Names elsewhere are read with pointers that must go strictly
backwards, which bounds every walk.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "CLASS_IN",
    "FLAG_AD",
    "FLAG_CD",
    "FLAG_QR",
    "FLAG_RA",
    "FLAG_RD",
    "FLAG_TC",
    "MAX_MESSAGE",
    "MIN_UDP_SIZE",
    "OUR_UDP_SIZE",
    "RCODE_BADVERS",
    "RCODE_FORMERR",
    "RCODE_NOERROR",
    "RCODE_NOTIMP",
    "RCODE_NXDOMAIN",
    "RCODE_REFUSED",
    "RCODE_SERVFAIL",
    "TYPE_A",
    "TYPE_AAAA",
    "TYPE_CNAME",
    "TYPE_HTTPS",
    "TYPE_OPT",
    "TYPE_SOA",
    "TYPE_SVCB",
    "DropPacket",
    "Query",
    "RejectQuery",
    "encode_name",
    "pack_answer",
    "pack_error",
    "parse_query",
    "read_name",
    "skip_name",
]

TYPE_A: Final = 1
TYPE_CNAME: Final = 5
TYPE_SOA: Final = 6
TYPE_AAAA: Final = 28
TYPE_OPT: Final = 41
TYPE_SVCB: Final = 64
TYPE_HTTPS: Final = 65
CLASS_IN: Final = 1

RCODE_NOERROR: Final = 0
RCODE_FORMERR: Final = 1
RCODE_SERVFAIL: Final = 2
RCODE_NXDOMAIN: Final = 3
RCODE_NOTIMP: Final = 4
RCODE_REFUSED: Final = 5
RCODE_BADVERS: Final = 16  # extended rcode: upper 8 bits go in the OPT record (RFC 6891 §6.1.3)

FLAG_QR: Final = 0x8000
_OPCODE_MASK: Final = 0x7800
FLAG_TC: Final = 0x0200
FLAG_RD: Final = 0x0100
FLAG_RA: Final = 0x0080
FLAG_AD: Final = 0x0020
FLAG_CD: Final = 0x0010
_EDNS_DO: Final = 0x8000

#: Without EDNS0 a UDP answer may not exceed 512 octets (RFC 1035 §4.2.1).
MIN_UDP_SIZE: Final = 512
#: The payload size we advertise and accept at most over UDP (DNS flag day 2020: no IP
#: fragmentation).
OUR_UDP_SIZE: Final = 1232
MAX_MESSAGE: Final = 65535
_MAX_NAME_WIRE: Final = 255

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_TYPE_CLASS = struct.Struct("!HH")


class DropPacket(Exception):
    """Not worth an answer: shorter than a header, or a response rather than a query."""


class RejectQuery(Exception):
    """The header is readable but the query is not one we answer; ``answer`` is the reply."""

    def __init__(self, reason: str, answer: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.answer = answer


class Query:
    """The parts of a query the filter uses.

    ``qname`` is the name as asked, ASCII-lowercased, dotted, without the trailing dot
    (``""`` for the root); ``plain`` says every label was printable ASCII without a dot inside,
    so ``qname`` spells the name unambiguously. ``question`` is the question section exactly
    as the client sent it (case included: some clients check that it is echoed unchanged).
    """

    __slots__ = (
        "do",
        "edns",
        "flags",
        "id",
        "plain",
        "qclass",
        "qname",
        "qtype",
        "question",
        "udp_size",
    )

    def __init__(
        self,
        id: int,
        flags: int,
        qname: str,
        plain: bool,
        question: bytes,
        qtype: int,
        qclass: int,
        edns: bool,
        udp_size: int,
        do: bool,
    ) -> None:
        self.id = id
        self.flags = flags
        self.qname = qname
        self.plain = plain
        self.question = question
        self.qtype = qtype
        self.qclass = qclass
        self.edns = edns
        self.udp_size = udp_size
        self.do = do

    @property
    def udp_limit(self) -> int:
        """The largest UDP answer this client takes: its EDNS0 size within our bounds."""
        if not self.edns:
            return MIN_UDP_SIZE
        return max(MIN_UDP_SIZE, min(self.udp_size, OUR_UDP_SIZE))

    def upstream_question(self) -> bytes:
        """The question lowercased (name only; the type and class octets could be letters)."""
        return self.question[:-4].lower() + self.question[-4:]


def _opt_record(do: bool, extended_rcode: int = 0) -> bytes:
    ttl = (extended_rcode << 24) | (_EDNS_DO if do else 0)
    return b"\x00" + _RR_FIXED.pack(TYPE_OPT, OUR_UDP_SIZE, ttl, 0)


_OPT_PLAIN: Final = _opt_record(False)
_OPT_DO: Final = _opt_record(True)


def answer_flags(query_flags: int, rcode: int) -> int:
    """Header flags of our answer: a recursive-available response echoing opcode, RD and CD."""
    return FLAG_QR | FLAG_RA | (query_flags & (_OPCODE_MASK | FLAG_RD | FLAG_CD)) | (rcode & 0xF)


def pack_error(
    query_id: int, query_flags: int, rcode: int, question: bytes = b"", opt: bool = False
) -> bytes:
    """An answer with no records: FORMERR, SERVFAIL, REFUSED, NOTIMP or BADVERS."""
    ar = 1 if opt else 0
    header = _HEADER.pack(
        query_id, answer_flags(query_flags, rcode), 1 if question else 0, 0, 0, ar
    )
    tail = _opt_record(False, rcode >> 4) if opt else b""
    return header + question + tail


def pack_answer(
    query: Query,
    rcode: int,
    body: bytes,
    an: int,
    ns: int,
    limit: int,
    extra_flags: int = 0,
) -> bytes:
    """Our answer to ``query``: the question echoed, ``body`` (answer and authority records
    that use offsets as if they follow this question), our OPT when the client sent one.

    Over ``limit`` the records are left out and TC is set, so the client asks again over TCP
    (RFC 1035 §4.2.1, RFC 7766 §5).
    """
    flags = answer_flags(query.flags, rcode) | extra_flags
    opt = (_OPT_DO if query.do else _OPT_PLAIN) if query.edns else b""
    ar = 1 if opt else 0
    wire = _HEADER.pack(query.id, flags, 1, an, ns, ar) + query.question + body + opt
    if len(wire) <= limit:
        return wire
    return _HEADER.pack(query.id, flags | FLAG_TC, 1, 0, 0, ar) + query.question + opt


def encode_name(name: str) -> bytes:
    """A dotted ASCII name in uncompressed wire form (``""`` is the root)."""
    out = bytearray()
    for label in name.strip(".").split(".") if name.strip(".") else ():
        raw = label.encode("ascii")
        if not 0 < len(raw) <= 63:
            raise ValueError(f"label {label!r} of {name!r} must be 1 to 63 octets")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > _MAX_NAME_WIRE:
        raise ValueError(f"name {name!r} is longer than 255 octets in wire form")
    return bytes(out)


def parse_query(wire: bytes) -> Query:
    """Read an ordinary query: one question, and an optional OPT record.

    Raises :class:`DropPacket` or :class:`RejectQuery` (with the FORMERR, NOTIMP or
    BADVERS answer ready to send).
    """
    if len(wire) < 12:
        raise DropPacket("shorter than a DNS header")
    qid, flags, qd, an, ns, ar = _HEADER.unpack_from(wire)
    if flags & FLAG_QR:
        # Answering a response invites two servers to bounce packets forever.
        raise DropPacket("a response, not a query")
    if flags & _OPCODE_MASK:
        raise RejectQuery("opcode is not QUERY", pack_error(qid, flags, RCODE_NOTIMP))
    if qd != 1:
        raise RejectQuery(
            f"{qd} questions (one is expected)", pack_error(qid, flags, RCODE_FORMERR)
        )
    end = len(wire)
    pos = 12
    labels: list[bytes] = []
    while True:
        if pos >= end:
            raise RejectQuery("question name runs past the end", pack_error(qid, flags, 1))
        n = wire[pos]
        if n == 0:
            pos += 1
            break
        if n > 63:
            raise RejectQuery(
                "compressed or extended label in the question", pack_error(qid, flags, 1)
            )
        labels.append(wire[pos + 1 : pos + 1 + n])
        pos += n + 1
    if pos - 12 > _MAX_NAME_WIRE:
        raise RejectQuery("question name over 255 octets", pack_error(qid, flags, 1))
    if pos + 4 > end:
        raise RejectQuery("question type and class missing", pack_error(qid, flags, 1))
    qtype, qclass = _TYPE_CLASS.unpack_from(wire, pos)
    pos += 4
    question = wire[12:pos]

    joined = b".".join(labels).lower()
    try:
        qname = joined.decode("ascii")
        plain = joined.count(b".") == len(labels) - 1 if labels else True
    except UnicodeDecodeError:
        qname = joined.decode("latin-1")
        plain = False

    edns = do = False
    udp_size = MIN_UDP_SIZE
    if an or ns or ar:
        edns, udp_size, do = _read_edns(wire, pos, an, ns, ar, qid, flags, question)
    return Query(qid, flags, qname, plain, question, qtype, qclass, edns, udp_size, do)


def _read_edns(
    wire: bytes, pos: int, an: int, ns: int, ar: int, qid: int, flags: int, question: bytes
) -> tuple[bool, int, bool]:
    """Walk the records after the question; return (has OPT, its UDP size, its DO bit)."""
    edns = do = False
    udp_size = MIN_UDP_SIZE
    end = len(wire)
    for index in range(an + ns + ar):
        start = pos
        try:
            pos = skip_name(wire, pos)
        except ValueError as exc:
            raise RejectQuery(str(exc), pack_error(qid, flags, RCODE_FORMERR)) from None
        if pos + 10 > end:
            raise RejectQuery("record runs past the end", pack_error(qid, flags, 1))
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(wire, pos)
        pos += 10 + rdlength
        if pos > end:
            raise RejectQuery("record data runs past the end", pack_error(qid, flags, 1))
        if rtype != TYPE_OPT:
            continue
        # RFC 6891 §6.1.1: one OPT, in the additional section, owned by the root.
        if edns or index < an + ns or wire[start] != 0:
            raise RejectQuery("misplaced or repeated OPT record", pack_error(qid, flags, 1))
        edns = True
        udp_size = rclass
        do = bool(ttl & _EDNS_DO)
        if (ttl >> 16) & 0xFF:
            raise RejectQuery(
                "EDNS version above 0",
                pack_error(qid, flags, RCODE_BADVERS, question, opt=True),
            )
    return edns, udp_size, do


def skip_name(wire: bytes, pos: int) -> int:
    """The offset just after the (possibly compressed) name at ``pos``; ValueError if bad."""
    end = len(wire)
    while True:
        if pos >= end:
            raise ValueError("name runs past the end")
        n = wire[pos]
        if n == 0:
            return pos + 1
        if n >= 0xC0:
            if pos + 2 > end:
                raise ValueError("compression pointer runs past the end")
            return pos + 2
        if n > 63:
            raise ValueError("extended label type")
        pos += n + 1


def read_name(wire: bytes, pos: int) -> tuple[str, int]:
    """The name at ``pos`` (lowercase, dotted, no trailing dot) and the offset after it.

    Each compression pointer must point strictly before the start of the stretch of labels
    that holds it, so successive jumps go ever further back and the walk ends even on a
    hostile packet (a pointer loop raises ValueError).
    """
    end = len(wire)
    labels: list[bytes] = []
    after = -1
    total = 1
    stretch = pos
    while True:
        if pos >= end:
            raise ValueError("name runs past the end")
        n = wire[pos]
        if n == 0:
            break
        if n >= 0xC0:
            if pos + 2 > end:
                raise ValueError("compression pointer runs past the end")
            target = ((n & 0x3F) << 8) | wire[pos + 1]
            if target >= stretch:
                raise ValueError("compression pointer does not point backwards")
            if after < 0:
                after = pos + 2
            pos = stretch = target
            continue
        if n > 63:
            raise ValueError("extended label type")
        total += n + 1
        if total > _MAX_NAME_WIRE:
            raise ValueError("name over 255 octets")
        labels.append(wire[pos + 1 : pos + 1 + n])
        pos += n + 1
    if after < 0:
        after = pos + 1
    return b".".join(labels).lower().decode("latin-1"), after
