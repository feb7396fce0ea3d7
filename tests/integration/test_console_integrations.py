"""The local console's integration pages against the real admin API: versions listed, and a version's
template and custom fields edited with a plain form (no script, the console's strict headers)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from broker_local.console import Console
from broker_local.gateway import LocalApiGateway
from tests.seeds import SEED_COMMERCE_TEMPLATE

VERSION = {"integration": "zoho-commerce", "version": "1"}
SAME_ORIGIN = {"sec-fetch-site": "same-origin", "content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def console(gateway: LocalApiGateway) -> Console:
    return Console(gateway.base_url)


def _post(console: Console, form: dict[str, str], headers: dict[str, str] | None = None) -> dict[str, Any]:
    event = {"headers": headers or SAME_ORIGIN, "pathParameters": VERSION, "body": urlencode(form)}
    return dict(console.save_version(event))


def _form(**changes: str) -> dict[str, str]:
    form = {
        "authorization_type": "connect_link",
        "oauth_url_template": SEED_COMMERCE_TEMPLATE,
        "default_scopes": "ZohoCommerce.items.ALL, ZohoCommerce.salesorders.READ",
        "default_api_url": "https://commerce.zoho.eu/store/api/v1",
        "requests_per_minute": "60",
        "max_concurrent_requests": "5",
        "field_name_0": "RedirectUrl",
        "field_description_0": "Redirect URL",
        "field_default_0": "",
        "field_name_1": "OrganizationId",
        "field_description_1": "Store organization id",
        "field_required_1": "yes",
        "field_name_2": "StoreRegion",
        "field_description_2": "Added from the console",
        "field_default_2": "eu",
        "field_name_3": "",
    }
    form.update(changes)
    return form


def test_the_integrations_page_lists_every_integration_and_links_each_version(console: Console) -> None:
    page = console.integrations({"headers": {}})

    assert page["statusCode"] == 200
    for name in (
        "Zoho CRM",
        "Zoho Commerce",
        "Zoho Books",
        "Zoho Inventory",
        "Zoho Desk",
        "Bigin by Zoho CRM",
    ):
        assert name in page["body"]
    assert 'href="/console/integrations/zoho-desk/versions/1"' in page["body"]
    assert (
        "<script" not in page["body"] and "default-src 'none'" in page["headers"]["Content-Security-Policy"]
    )


def test_a_version_is_edited_with_the_plain_form_and_the_admin_api_shows_the_change(
    console: Console, admin: httpx.Client
) -> None:
    shown = console.version({"headers": {}, "pathParameters": VERSION})
    saved = _post(console, _form())

    assert shown["statusCode"] == 200 and 'name="oauth_url_template"' in shown["body"]
    assert "<script" not in shown["body"]
    assert saved["statusCode"] == 200 and "Saved" in saved["body"]
    version = admin.get("/admin/integrations/zoho-commerce/versions/1").json()
    assert version["default_api_url"] == "https://commerce.zoho.eu/store/api/v1"
    assert version["default_scopes"] == ["ZohoCommerce.items.ALL", "ZohoCommerce.salesorders.READ"]
    assert [(f["name"], f["required"], f["default"]) for f in version["custom_fields"]] == [
        ("RedirectUrl", False, None),
        ("OrganizationId", True, None),
        ("StoreRegion", False, "eu"),
    ]
    assert version["changed_by"] == "arn:aws:iam::123456789012:user/local"


def test_a_bad_template_is_refused_naming_the_problem_and_the_form_keeps_what_was_sent(
    console: Console, admin: httpx.Client
) -> None:
    bad = SEED_COMMERCE_TEMPLATE.replace("response_type=code", "response_type=token")

    refused = _post(console, _form(oauth_url_template=bad))

    assert refused["statusCode"] == 400
    assert "response_type=code (it has token)" in refused["body"]
    assert "response_type=token" in refused["body"]  # the template as sent, to fix rather than retype
    assert admin.get("/admin/integrations/zoho-commerce").json()["revision"] == 0


def test_a_form_posted_from_another_site_is_refused(console: Console, admin: httpx.Client) -> None:
    refused = _post(console, _form(), headers={"sec-fetch-site": "cross-site"})

    assert refused["statusCode"] == 403
    assert admin.get("/admin/integrations/zoho-commerce").json()["revision"] == 0
