"""The accounts-server allow-list decides where a grant code may be sent."""

import pytest

from zoho_broker.data_centres import ZOHO_ACCOUNTS_SERVERS, AccountsServers, label
from zoho_broker.errors import UntrustedAccountsServer

servers = AccountsServers(ZOHO_ACCOUNTS_SERVERS)


@pytest.mark.parametrize(
    ("location", "accounts_server", "expected"),
    [
        ("eu", "https://accounts.zoho.eu", ("eu", "https://accounts.zoho.eu")),
        (None, "HTTPS://Accounts.Zoho.EU/", ("eu", "https://accounts.zoho.eu")),
        ("ca", "https://accounts.zohocloud.ca", ("ca", "https://accounts.zohocloud.ca")),
        ("in", None, ("in", "https://accounts.zoho.in")),
        (None, None, ("us", "https://accounts.zoho.com")),
    ],
)
def test_known_zoho_accounts_servers_are_accepted(
    location: str | None, accounts_server: str | None, expected: tuple[str, str]
) -> None:
    assert servers.resolve(location=location, accounts_server=accounts_server) == expected


NOT_ZOHO = "The accounts server in the callback is not one of Zoho's accounts servers."
NOT_AN_ORIGIN = "The accounts server is not a plain http(s) origin."


@pytest.mark.parametrize(
    ("accounts_server", "why"),
    [
        ("https://accounts.zoho.eu.evil.example", NOT_ZOHO),
        ("https://evil.example", NOT_ZOHO),
        ("https://accounts.zoho.ca", NOT_ZOHO),  # Canada is zohocloud.ca
        ("http://accounts.zoho.eu", NOT_ZOHO),
        ("https://user@accounts.zoho.eu", NOT_AN_ORIGIN),
        ("javascript:alert(1)", NOT_AN_ORIGIN),
        ("//accounts.zoho.eu", NOT_AN_ORIGIN),
        ("https://[accounts.zoho.eu", "The accounts server is not a valid URL."),
    ],
)
def test_anything_else_is_refused_with_the_sentence_the_callback_page_shows(
    accounts_server: str, why: str
) -> None:
    with pytest.raises(UntrustedAccountsServer) as raised:
        servers.resolve(location=None, accounts_server=accounts_server)
    assert str(raised.value) == why


def test_a_location_that_disagrees_with_the_accounts_server_is_refused() -> None:
    with pytest.raises(UntrustedAccountsServer, match="disagree"):
        servers.resolve(location="us", accounts_server="https://accounts.zoho.eu")


def test_an_unknown_location_is_refused() -> None:
    with pytest.raises(UntrustedAccountsServer):
        servers.resolve(location="mars", accounts_server=None)


def test_a_grant_for_an_unlisted_data_centre_names_it() -> None:
    with pytest.raises(UntrustedAccountsServer) as raised:
        servers.url_for("mars")
    assert str(raised.value) == "Unknown Zoho data centre 'mars'."


@pytest.mark.parametrize(
    ("data_centre", "shown"),
    [("eu", "EU"), ("in", "India"), ("sa", "Saudi Arabia"), ("xx", "XX")],
    ids=["eu", "in", "sa", "configured-elsewhere"],
)
def test_pages_name_a_data_centre_by_its_label_or_its_code_in_capitals(data_centre: str, shown: str) -> None:
    # A data centre configured in BROKER_ACCOUNTS_SERVERS but unknown to Zoho's list shows as its code
    assert label(data_centre) == shown


def test_a_configured_stand_in_replaces_zohos_host_in_rendered_urls() -> None:
    local = AccountsServers({"us": "http://127.0.0.1:9001", "eu": "http://127.0.0.1:9002"})

    rewritten = local.rewrite_zoho_origin("https://accounts.zoho.com/oauth/v2/auth?client_id=c")

    assert rewritten == "http://127.0.0.1:9001/oauth/v2/auth?client_id=c"
    assert local.rewrite_zoho_origin("https://other.example/x") == "https://other.example/x"
    with pytest.raises(UntrustedAccountsServer):
        local.resolve(location=None, accounts_server="https://accounts.zoho.com")
