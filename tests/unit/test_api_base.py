"""A version's API data: the verification call, the headers and parameters every call carries, the
paging style; and the API base a connected subscription's calls go to."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from zoho_broker.api_base import api_base, api_headers, api_query_parameters, json_path_value
from zoho_broker.catalogue import IntegrationVersionFields, load_catalogue
from zoho_broker.data_centres import ZOHO_ACCOUNTS_SERVERS, AccountsServers
from zoho_broker.errors import InvalidInput

ZOHO = AccountsServers(ZOHO_ACCOUNTS_SERVERS)
STANDIN = AccountsServers({"us": "http://127.0.0.1:9001", "eu": "http://127.0.0.1:9002"})


def _version(**overrides: Any) -> IntegrationVersionFields:
    body: dict[str, Any] = {
        "version": "9",
        "authorization_type": "self_client",
        "default_scopes": ["ZohoCommerce.items.ALL"],
        "default_api_url": "https://commerce.zoho.com/store/api/v1",
        "custom_fields": [{"name": "OrganizationId", "required": True}, {"name": "Region", "default": "eu"}],
        "default_throttling": {"requests_per_minute": 10, "max_concurrent_requests": 1},
    }
    body.update(overrides)
    return IntegrationVersionFields.model_validate(body)


def test_every_built_in_names_its_verification_call_headers_and_paging() -> None:
    catalogue = load_catalogue()
    crm = catalogue.get("zoho-crm").latest
    commerce = catalogue.get("zoho-commerce").latest
    books = catalogue.get("zoho-books").latest
    desk = catalogue.get("zoho-desk").latest

    assert crm.verification is not None
    assert (crm.verification.path, crm.verification.organization_id, crm.verification.organization_name) == (
        "/org",
        "org[0].id",
        "org[0].company_name",
    )
    assert crm.paging is not None and crm.paging.more_records == "info.more_records"
    assert commerce.api_headers == {"X-com-zoho-store-organizationid": "{SystemTypeVersion:OrganizationId}"}
    assert books.api_query_parameters == {"organization_id": "{SystemTypeVersion:OrganizationId}"}
    assert desk.api_headers == {"orgId": "{SystemTypeVersion:OrgId}"} and desk.paging is None
    assert all(i.latest.verification is not None for i in catalogue.integrations)


def test_headers_and_parameters_are_filled_from_the_subscriptions_custom_fields() -> None:
    version = _version(
        api_headers={"X-com-zoho-store-organizationid": "{SystemTypeVersion:OrganizationId}"},
        api_query_parameters={
            "organization_id": "{SystemTypeVersion:OrganizationId}",
            "r": "{SystemTypeVersion:Region}",
        },
    )

    headers = api_headers(version, {"OrganizationId": "700"})
    parameters = api_query_parameters(version, {"OrganizationId": "700"})

    assert headers == {"X-com-zoho-store-organizationid": "700"}
    assert parameters == {"organization_id": "700", "r": "eu"}  # a field's default fills a missing value
    with pytest.raises(InvalidInput, match="OrganizationId"):
        api_headers(version, {})


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"api_headers": {"X-Org": "{SystemTypeVersion:Nope}"}}, "names no custom field"),
        ({"api_headers": {"X-Org": "{Client_Id}"}}, "unknown placeholder {Client_Id}"),
        ({"api_headers": {"X-Org": "{SystemTypeVersion:OrganizationId"}}, "unbalanced braces"),
        ({"api_headers": {"Authorization": "x"}}, "sets Authorization itself"),
        ({"api_headers": {"X-A": "1", "x-a": "2"}}, "x-a is given twice"),
        ({"api_headers": {"Bad Header": "1"}}, "api_headers"),
        ({"api_headers": {"X-A": "line\nbreak"}}, "api_headers"),
        (
            {"api_query_parameters": {"organization_id": "{SystemTypeVersion:Missing}"}},
            "names no custom field",
        ),
        (
            {
                "verification": {
                    "path": "/org/{SystemTypeVersion:Nope}",
                    "organization_id": "a",
                    "organization_name": "b",
                }
            },
            "verification.path",
        ),
        ({"verification": {"path": "/a/../b", "organization_id": "a", "organization_name": "b"}}, "segments"),
        (
            {
                "verification": {
                    "path": "/org",
                    "organization_id": "org[0].id; drop",
                    "organization_name": "b",
                }
            },
            "organization_id",
        ),
        ({"paging": {"style": "offset"}}, "paging"),
    ],
)
def test_api_data_is_validated_like_the_other_version_fields(overrides: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem.replace("{", r"\{").replace("(", r"\(")):
        _version(**overrides)


def test_json_paths_find_values_and_answer_none_for_anything_missing() -> None:
    answer = {"org": [{"id": "111", "company_name": "Acme Ltd"}], "info": {"more_records": True}}

    assert json_path_value(answer, "org[0].id") == "111"
    assert json_path_value(answer, "org[0].company_name") == "Acme Ltd"
    assert json_path_value(answer, "info.more_records") is True
    assert json_path_value(answer, "org[1].id") is None
    assert json_path_value(answer, "org.id") is None
    assert json_path_value([], "org[0].id") is None


@pytest.mark.parametrize(
    ("api_url", "data_centre", "api_domain", "servers", "expected"),
    [
        # zohoapis URLs move to the api_domain Zoho answered for the connected data centre
        (
            "https://www.zohoapis.com/crm/v8",
            "eu",
            "https://www.zohoapis.eu",
            ZOHO,
            "https://www.zohoapis.eu/crm/v8",
        ),
        (
            "https://www.zohoapis.com/books/v3",
            "ca",
            "https://www.zohoapis.ca",
            ZOHO,
            "https://www.zohoapis.ca/books/v3",
        ),
        # products on their own hosts move to that product's host at the data centre (Canada: zohocloud.ca)
        (
            "https://commerce.zoho.com/store/api/v1",
            "eu",
            "https://www.zohoapis.eu",
            ZOHO,
            "https://commerce.zoho.eu/store/api/v1",
        ),
        (
            "https://desk.zoho.com/api/v1",
            "ca",
            "https://www.zohoapis.ca",
            ZOHO,
            "https://desk.zohocloud.ca/api/v1",
        ),
        ("https://desk.zoho.com/api/v1", "au", None, ZOHO, "https://desk.zoho.com.au/api/v1"),
        # a local stand-in serves every product where its api_domain points
        (
            "https://commerce.zoho.com/store/api/v1",
            "eu",
            "http://127.0.0.1:9002",
            STANDIN,
            "http://127.0.0.1:9002/store/api/v1",
        ),
        (
            "https://www.zohoapis.com/crm/v8",
            "us",
            "http://127.0.0.1:9001",
            STANDIN,
            "http://127.0.0.1:9001/crm/v8",
        ),
        # an api_domain that is neither Zoho's nor a configured server is ignored: no token goes there
        (
            "https://www.zohoapis.com/crm/v8",
            "eu",
            "https://evil.example.com",
            ZOHO,
            "https://www.zohoapis.com/crm/v8",
        ),
        (
            "https://www.zohoapis.com/crm/v8",
            "eu",
            "http://www.zohoapis.eu",
            ZOHO,
            "https://www.zohoapis.com/crm/v8",
        ),
        # not connected, or an operator's own host (a sandbox): as configured
        ("https://www.zohoapis.com/crm/v8", None, None, ZOHO, "https://www.zohoapis.com/crm/v8"),
        (
            "https://sandbox.zohoapis.com/crm/v8/",
            "eu",
            "https://www.zohoapis.eu",
            ZOHO,
            "https://sandbox.zohoapis.com/crm/v8",
        ),
    ],
)
def test_the_api_base_is_re_rooted_on_the_connected_data_centre(
    api_url: str, data_centre: str | None, api_domain: str | None, servers: AccountsServers, expected: str
) -> None:
    assert (
        api_base(api_url=api_url, data_centre=data_centre, api_domain=api_domain, accounts_servers=servers)
        == expected
    )
