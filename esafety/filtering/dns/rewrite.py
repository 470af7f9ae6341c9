"""Safe-search rewrites: answer ``www.google.co.uk`` with a CNAME to
``forcesafesearch.google.com`` and that name's own records (issue 4 §4 and §7).

The client asked for one name and gets an answer for another, so this is not a replay of
upstream octets: the records are rebuilt with dnspython. Rewrites are a few names per
search page, not the flood a blocklist sees, so a general DNS library is affordable here.
"""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from esafety.filtering.dns.cache import CachedAnswer
from esafety.filtering.dns.wire import OUR_UDP_SIZE, Query, answer_flags

__all__ = ["pack_rewrite"]


def pack_rewrite(
    query: Query, target: str, answer: CachedAnswer, now: float, ttl: int, limit: int
) -> bytes:
    """The rewrite answer: ``qname CNAME target`` then the target's answer records."""
    qname, _ = dns.name.from_wire(query.question, 0)
    target_name = dns.name.from_text(target)
    upstream = dns.message.from_wire(answer.message_at(now))
    response = dns.message.Message(id=query.id)
    response.flags = answer_flags(query.flags, answer.rcode)
    response.question.append(
        dns.rrset.RRset(qname, dns.rdataclass.IN, dns.rdatatype.RdataType.make(query.qtype))
    )
    cname = dns.rrset.from_text(qname, ttl, "IN", "CNAME", target_name.to_text())
    response.answer.append(cname)
    response.answer.extend(upstream.answer)
    if query.edns:
        response.use_edns(0, dns.flags.DO if query.do else 0, payload=OUR_UDP_SIZE)
    try:
        return response.to_wire(max_size=limit, prefer_truncation=True)
    except dns.exception.TooBig:
        response.answer.clear()
        response.flags |= dns.flags.TC
        return response.to_wire()
