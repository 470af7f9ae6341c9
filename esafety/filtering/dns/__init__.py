"""The DNS filter: a forwarding resolver that asks the decision engine about every name.

``wire`` reads and packs messages by hand, ``handler`` runs parse → decide → pack for any
transport, ``upstream`` and ``cache`` forward allowed names, ``rewrite`` answers safe-search
rewrites, ``server`` carries it all over UDP and TCP.
"""

from esafety.filtering.dns.handler import (
    BlockSettings,
    DnsCounters,
    DnsDecider,
    DnsHandler,
    DnsVerdict,
)
from esafety.filtering.dns.server import DnsServer, ServerSettings
from esafety.filtering.dns.upstream import Forwarder, UpstreamSettings

__all__ = [
    "BlockSettings",
    "DnsCounters",
    "DnsDecider",
    "DnsHandler",
    "DnsServer",
    "DnsVerdict",
    "Forwarder",
    "ServerSettings",
    "UpstreamSettings",
]
