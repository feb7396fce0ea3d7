"""The proxy's path and header rules: a caller's path stays under the API base, whatever it tries."""

from __future__ import annotations

import pytest

from zoho_broker.errors import InvalidInput
from zoho_broker.logic.proxy import zoho_pause_seconds, zoho_says_too_many_requests
from zoho_broker.proxy_rules import answer_headers, forwarded_headers, target_url

BASE = "https://www.zohoapis.eu/crm/v8"


def test_a_path_is_joined_under_the_base_with_its_query_as_sent() -> None:
    assert (
        target_url(BASE, "Leads/123", "fields=Last_Name%2CEmail&page=2", {})
        == "https://www.zohoapis.eu/crm/v8/Leads/123?fields=Last_Name%2CEmail&page=2"
    )


def test_the_versions_query_parameters_replace_the_callers() -> None:
    url = target_url(
        "https://www.zohoapis.com/books/v3",
        "invoices",
        "organization_id=evil&page=1",
        {"organization_id": "42"},
    )
    assert url == "https://www.zohoapis.com/books/v3/invoices?page=1&organization_id=42"


@pytest.mark.parametrize(
    "path",
    [
        "../org",
        "Leads/../../v2/org",
        "Leads/%2e%2e/secret",
        "%2E%2E",
        ".",
        "Leads/%2F..%2Fx",
        "Leads%2fx",
        "Leads%5c..%5cx",
        "Leads\\..\\x",
        "https://evil.example/x",
        "//evil.example/x",
        "https:%2F%2Fevil.example",
        "Leads//x",
        "",
        "Leads/",
        "a b",
        "Leads%00",
        "Leads#frag",
    ],
)
def test_paths_that_could_leave_the_base_are_refused(path: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        target_url(BASE, path, "", {})
    assert refused.value.details[0]["field"] == "path.path"


def test_an_at_sign_inside_a_segment_stays_a_path() -> None:
    # Legal in a path segment; it cannot become user info because scheme and host come from the base.
    assert target_url(BASE, "users/a@b", "", {}) == "https://www.zohoapis.eu/crm/v8/users/a@b"


def test_a_query_with_raw_special_characters_is_refused() -> None:
    with pytest.raises(InvalidInput):
        target_url(BASE, "Leads", "q=a b", {})


def test_caller_credentials_hop_by_hop_and_gateway_headers_are_dropped() -> None:
    received = {
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIA...",
        "x-amz-date": "20261124T000000Z",
        "x-amz-security-token": "token",
        "x-amz-content-sha256": "abc",
        "x-amzn-trace-id": "Root=1",
        "x-forwarded-for": "10.0.0.1",
        "cookie": "session=1",
        "connection": "keep-alive, x-secret-hop",
        "x-secret-hop": "1",
        "transfer-encoding": "chunked",
        "host": "api.example",
        "content-length": "5",
        "x-broker-max-wait": "3",
        "x-com-zoho-store-organizationid": "forged",
        "content-type": "application/json",
        "if-none-match": '"abc"',
    }
    forwarded = forwarded_headers(received, {"X-com-zoho-store-organizationid": "123"})
    assert forwarded == {
        "content-type": "application/json",
        "if-none-match": '"abc"',
        "X-com-zoho-store-organizationid": "123",
    }


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\x00b"])
def test_header_injection_is_refused(value: str) -> None:
    with pytest.raises(InvalidInput):
        forwarded_headers({"x-custom": value}, {})


def test_zohos_answer_keeps_its_headers_but_not_cookies_or_encoding() -> None:
    kept = answer_headers(
        [
            ("Content-Type", "application/json"),
            ("Set-Cookie", "zcrm=1"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", "10"),
            ("X-RATELIMIT-REMAINING", "9"),
            ("Vary", "Accept"),
            ("Vary", "Origin"),
        ]
    )
    assert kept == {"content-type": "application/json", "x-ratelimit-remaining": "9", "vary": "Accept,Origin"}


@pytest.mark.parametrize(
    ("retry_after", "pause"),
    [(None, 5), ("soon", 5), ("0", 1), ("-3", 1), ("1", 1), ("2", 2), ("30", 30), ("3600", 60)],
)
def test_zohos_too_many_requests_pauses_the_subscription_as_its_retry_after_says_within_1_to_60_seconds(
    retry_after: str | None, pause: int
) -> None:
    assert zoho_pause_seconds(retry_after) == pause


CODE = b"TOO_MANY_REQUESTS"
MARKER = b'"code":"' + CODE + b'"'


@pytest.mark.parametrize(
    ("status", "body", "too_many"),
    [
        (429, b"", True),
        (400, b'{"data":[{' + MARKER + b"}]}", True),
        (200, b'{"data":[{' + MARKER + b"}]}", False),  # a record may hold any text
        (400, b" " * (4096 - len(CODE)) + CODE, True),  # ends at the 4 KiB searched
        (400, b" " * (4097 - len(CODE)) + CODE, False),  # ends a byte beyond
    ],
    ids=["429", "error-naming-it", "success-naming-it", "within-4-KiB", "beyond-4-KiB"],
)
def test_zohos_too_many_requests_is_a_429_or_an_error_naming_it_in_its_first_4_kib(
    status: int, body: bytes, too_many: bool
) -> None:
    assert zoho_says_too_many_requests(status, body) is too_many
