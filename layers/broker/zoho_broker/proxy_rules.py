"""What the proxy forwards and what it refuses: a caller's path joined under the API base (never leaving
it), the caller's headers without their own credentials or hop-by-hop headers, and the size limits that
API Gateway and Lambda impose. Pure functions: nothing here sends anything."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from zoho_broker.errors import InvalidInput

# A raw path segment: RFC 3986 pchar, percent-escapes included. Anything else (spaces, backslashes,
# quotes, control characters) must arrive percent-encoded, and some encodings are refused below.
_SEGMENT = re.compile(r"^(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})+$")
# Encoded slashes and backslashes would turn one segment into several at a server that decodes them.
_ENCODED_SEPARATORS = re.compile(r"%(?:2[Ff]|5[Cc]|00)")
_QUERY = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*$")
MAX_PATH_CHARACTERS = 2048

# Hop-by-hop headers (RFC 9110 7.6.1) and those HTTP recomputes; never forwarded either way.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
# The caller's own credentials and what API Gateway adds about the caller: never sent to Zoho.
CALLER_ONLY = frozenset({"authorization", "cookie", "forwarded", "x-api-key", "accept-encoding", "expect"})
CALLER_ONLY_PREFIXES = ("x-amz-", "x-amzn-", "x-forwarded-", "x-broker-")
# Zoho's answer: its cookies are for its own domain and would be set on the broker's; the body is
# handed back decoded, so its encoding and length no longer apply.
ANSWER_DROPPED = frozenset({"set-cookie", "content-encoding", "content-length"})
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")

# Lambda takes and returns at most 6 MB (synchronous invocation, the event or the answer as JSON).
# A body travels base64-encoded inside it (4/3 of its size), next to headers and the rest.
LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_REQUEST_BODY_BYTES = 4 * 1024 * 1024
MAX_ANSWER_BODY_BYTES = 4 * 1024 * 1024


def target_url(api_base: str, raw_path: str, raw_query: str, extra_query: Mapping[str, str]) -> str:
    """The URL under ``api_base`` that ``raw_path`` names; InvalidInput for anything that could leave it.

    ``raw_path`` is what follows ``/proxy/{subscription_id}/``, still percent-encoded as the caller sent it.
    Refused: an empty path, empty, ``.`` or ``..`` segments (encoded or not), encoded slashes,
    backslashes or NULs, and characters that are not allowed in a path. The result's scheme, host and
    path prefix are checked against the base again after joining.
    """
    if not raw_path or len(raw_path) > MAX_PATH_CHARACTERS:
        raise _refused(f"give a path under the API base, at most {MAX_PATH_CHARACTERS} characters")
    if _ENCODED_SEPARATORS.search(raw_path):
        raise _refused("encoded slashes, backslashes and NULs are not allowed in the path")
    for segment in raw_path.split("/"):
        if not segment:
            raise _refused("the path has an empty segment (//, or a leading or trailing slash)")
        if not _SEGMENT.match(segment):
            raise _refused("the path has characters that must be percent-encoded")
        if unquote(segment) in (".", ".."):
            raise _refused(". and .. segments are not allowed: the path stays under the API base")
    if not _QUERY.match(raw_query):
        raise InvalidInput(
            "The query string has characters that must be percent-encoded.",
            [{"field": "query", "message": "percent-encode spaces and special characters"}],
        )
    base = urlsplit(api_base)
    base_path = base.path.rstrip("/")
    path = f"{base_path}/{raw_path}"
    query = _with_parameters(raw_query, extra_query)
    url = urlunsplit((base.scheme, base.netloc, path, query, ""))
    joined = urlsplit(url)
    if (joined.scheme, joined.netloc) != (base.scheme, base.netloc) or not joined.path.startswith(
        base_path + "/"
    ):
        raise _refused("the path would leave the API base")
    return url


def _with_parameters(raw_query: str, extra: Mapping[str, str]) -> str:
    """The caller's query as sent, with the version's parameters (Books' organization_id) set over it."""
    if not extra:
        return raw_query
    kept = [pair for pair in parse_qsl(raw_query, keep_blank_values=True) if pair[0] not in extra] + list(
        extra.items()
    )
    return urlencode(kept, quote_via=quote)


def _refused(reason: str) -> InvalidInput:
    return InvalidInput(f"The path is refused: {reason}.", [{"field": "path.path", "message": reason}])


def forwarded_headers(received: Mapping[str, str], added: Mapping[str, str]) -> dict[str, str]:
    """The caller's headers that go on to Zoho, then the version's API headers over them.

    Dropped: hop-by-hop headers and those named by Connection, the caller's credentials (Authorization,
    cookies, SigV4's x-amz-*), what API Gateway adds (x-forwarded-*, x-amzn-*), the broker's own
    x-broker-* controls, and any header the version sets (the caller cannot replace the org header).
    A value with a line break or a control character is refused (header injection).
    """
    named_by_connection = {
        token.strip().lower() for token in received.get("connection", "").split(",") if token.strip()
    }
    overridden = {name.lower() for name in added}
    headers: dict[str, str] = {}
    for name, value in received.items():
        lowered = name.lower()
        if not _HEADER_VALUE.match(value) or not _HEADER_VALUE.match(name):
            raise InvalidInput(
                "A header has a line break or a control character.",
                [{"field": f"header.{lowered[:64]}", "message": "control characters are not allowed"}],
            )
        if (
            lowered in HOP_BY_HOP
            or lowered in CALLER_ONLY
            or lowered in named_by_connection
            or lowered in overridden
            or lowered.startswith(CALLER_ONLY_PREFIXES)
        ):
            continue
        headers[lowered] = value
    headers.update(added)
    return headers


def answer_headers(received: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Zoho's answer headers for the caller: hop-by-hop ones, cookies and the encoding dropped; repeated
    headers comma-joined, as payload format 2.0 answers carry one value per name."""
    headers: dict[str, str] = {}
    for name, value in received:
        lowered = name.lower()
        if lowered in HOP_BY_HOP or lowered in ANSWER_DROPPED:
            continue
        headers[lowered] = f"{headers[lowered]},{value}" if lowered in headers else value
    return headers
