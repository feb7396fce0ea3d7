"""The integrations catalogue is data, validated; templates render as the seeds describe."""

from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from tests.seeds import SEED_COMMERCE_TEMPLATE
from zoho_broker.catalogue import IntegrationVersion, load_catalogue
from zoho_broker.errors import InvalidInput, NotFound
from zoho_broker.oauth_url import render_authorization_url


def _version(template: str, fields: list[dict[str, object]] | None = None) -> IntegrationVersion:
    return IntegrationVersion.model_validate(
        {
            "version": "9",
            "oauth_url_template": template,
            "default_scopes": ["ZohoCRM.modules.ALL"],
            "default_api_url": "https://www.zohoapis.com/crm/v8",
            "custom_fields": fields if fields is not None else [{"name": "RedirectUrl"}],
            "default_throttling": {"requests_per_minute": 10, "max_concurrent_requests": 1},
        }
    )


def test_the_catalogue_offers_zoho_crm_and_zoho_commerce_with_defaults() -> None:
    catalogue = load_catalogue()

    crm, commerce = catalogue.get("zoho-crm"), catalogue.get("zoho-commerce")

    assert crm.name == "Zoho CRM" and commerce.name == "Zoho Commerce"
    assert crm.latest.default_throttling.requests_per_minute > 0
    assert {f.name for f in commerce.latest.custom_fields} == {"RedirectUrl", "OrganizationId"}
    assert commerce.latest.oauth_url_template == SEED_COMMERCE_TEMPLATE


def test_the_seed_commerce_template_pasted_verbatim_renders_zohos_authorization_url() -> None:
    version = _version(SEED_COMMERCE_TEMPLATE)

    url = render_authorization_url(
        version,
        client_id="1000.CLIENT",
        state="nonce.sub_1.sig",
        custom_fields={"RedirectUrl": "https://broker.example.com/oauth/callback"},
    )

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "accounts.zoho.com", "/oauth/v2/auth")
    assert query["client_id"] == ["1000.CLIENT"]
    assert query["redirect_uri"] == ["https://broker.example.com/oauth/callback"]
    assert query["state"] == ["nonce.sub_1.sig"]
    assert query["access_type"] == ["offline"] and query["response_type"] == ["code"]
    assert query["scope"][0].split(",")[2] == "ZohoCommerce.inventoryadjustments.CREATE"


def test_substituted_values_are_encoded_so_they_cannot_add_parameters() -> None:
    url = render_authorization_url(
        _version(SEED_COMMERCE_TEMPLATE),
        client_id="abc&redirect_uri=https://evil.example",
        state="s",
        custom_fields={"RedirectUrl": "https://broker.example.com/cb?x=1&y=2"},
    )

    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == ["abc&redirect_uri=https://evil.example"]
    assert query["redirect_uri"] == ["https://broker.example.com/cb?x=1&y=2"]


def test_scopes_placeholder_renders_the_default_scopes() -> None:
    crm = load_catalogue().get("zoho-crm").latest

    url = render_authorization_url(
        crm, client_id="c", state="s", custom_fields={"RedirectUrl": "https://b/cb"}
    )

    assert parse_qs(urlsplit(url).query)["scope"] == [",".join(crm.default_scopes)]


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("https://accounts.zoho.com/oauth/v2/auth?client_id={Client_Id}", "state"),
        ("https://accounts.zoho.com/oauth/v2/auth?state={iPaaSState}", "Client_Id"),
        ("https://a/?client_id={Client_Id}&state={State}&x={Nope}", "unknown template placeholder"),
        (
            "https://a/?client_id={Client_Id}&state={State}&x={SystemTypeVersion:Missing}",
            "names no custom field",
        ),
    ],
)
def test_a_template_with_a_wrong_placeholder_is_refused_when_the_catalogue_loads(
    template: str, problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        _version(template)


def test_a_missing_custom_field_value_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="RedirectUrl"):
        render_authorization_url(_version(SEED_COMMERCE_TEMPLATE), client_id="c", state="s", custom_fields={})


def test_unknown_integrations_and_versions_name_what_exists() -> None:
    catalogue = load_catalogue()

    with pytest.raises(NotFound, match="zoho-crm"):
        catalogue.get("salesforce")
    with pytest.raises(InvalidInput, match="known: 1"):
        catalogue.get("zoho-crm").get_version("42")
