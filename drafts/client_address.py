"""The address of the person behind a request, through the reverse proxies we trust.

Behind nginx every request reaches gunicorn from the loopback, so REMOTE_ADDR is the
proxy's: the login lock would count every failed login of the whole team against one
address (25 of them, from anyone, and nobody could log in), and Account security would
list 127.0.0.1 for every session. nginx passes the client's address in X-Forwarded-For,
but anyone can send that header too, so it is read only when the request came from a proxy
in REPLYHUB_TRUSTED_PROXIES (the loopback by default), and from the right: each trusted
proxy appends the address it was called from, so the first address from the right that is
not a trusted proxy is the client's; what is left of it the client may have written.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> Address | None:
    """An address as proxies write it ("203.0.113.7", "[2001:db8::1]:443",
    "203.0.113.7:51234"), IPv4-mapped IPv6 as IPv4; None for anything else."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address: Address) -> bool:
    return any(address in network for network in settings.REPLYHUB_TRUSTED_PROXIES)


def user_agent(request: HttpRequest) -> str:
    """The browser's User-Agent, as records of sessions and sign-ins keep it (300 chars)."""
    return request.META.get("HTTP_USER_AGENT", "")[:300]


def client_address(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or behind trusted proxies the address the nearest
    of them was called from. None when the server gave no usable address."""
    address = _address(request.META.get("REMOTE_ADDR") or "")
    if address is None:
        return None
    # A header sent twice reaches Django as one, joined with commas.
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    while _trusted(address) and hops:
        earlier = _address(hops.pop())
        if earlier is None:
            # Not an address: a trusted proxy did not write it, so stop at that proxy.
            break
        address = earlier
    return str(address)
