"""Keep credentials that ride in URIs out of every message modelops builds.

A storage URI can carry secrets in two places: userinfo
(``https://user:password@host/...``) and the query string (a pre-signed
URL's ``X-Amz-Signature``, ``X-Goog-Signature``, SAS tokens...). The CRD
refuses userinfo at apply time, but a message may still quote a URI from
elsewhere (an object stored before that rule, an endpoint URL from the
environment, an exception text from a client library), so every message
that leaves a process -- storage errors, termination messages, conditions,
events -- goes through :func:`redact` first.

Pure and dependency-free, so every layer (storage, render, controllers,
trainer) can import it.
"""

from __future__ import annotations

import re

REDACTED = "REDACTED"

# scheme://[userinfo@]rest, up to whitespace or a quote/bracket that ends a URI in prose.
_URI = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>[^\s'\"<>`]+)")


# Generated-data URIs whose query is parameters, never a secret (synthetic://tabular?rows=N).
_PLAIN_QUERY_SCHEMES = ("synthetic://",)


def _redact_one(scheme: str, rest: str) -> str:
    # Userinfo: everything before the last '@' of the authority (the part
    # before the first '/', '?' or '#'). Passwords may contain '@'.
    end = len(rest)
    for sep in "/?#":
        pos = rest.find(sep)
        if pos != -1:
            end = min(end, pos)
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        authority = f"{REDACTED}@{authority.rsplit('@', 1)[1]}"
    # Query string and fragment: any of their parameters may be a signature or token.
    cut = (
        -1
        if scheme.lower() in _PLAIN_QUERY_SCHEMES
        else min((p for p in (tail.find("?"), tail.find("#")) if p != -1), default=-1)
    )
    if cut != -1:
        tail = f"{tail[:cut]}?{REDACTED}"
    return f"{scheme}{authority}{tail}"


def redact_uri(uri: str) -> str:
    """``uri`` without userinfo and without its query string or fragment."""
    match = _URI.fullmatch(uri.strip())
    if match is None:
        return uri
    return _redact_one(match["scheme"], match["rest"])


def redact(text: str) -> str:
    """``text`` with every URI in it redacted (see :func:`redact_uri`)."""
    if "://" not in text:
        return text
    return _URI.sub(lambda m: _redact_one(m["scheme"], m["rest"]), text)
