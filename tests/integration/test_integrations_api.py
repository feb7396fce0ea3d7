"""Integrations and versions managed at runtime through the admin API, as the seeds' integrators do:
the built-ins on a fresh stack, new versions (the seed's Commerce template pasted verbatim), every
validation rule, subscriptions moved between versions, and versions deleted only when unused."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aws_calls import dynamodb_pages_of, on_call
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from flow import connect, connect_link, create_subscription, decide_at_zoho, open_link, page_title

from broker_local.zoho_standin import ZohoStandIn
from tests.seeds import SEED_COMMERCE_TEMPLATE
from zoho_broker.errors import Conflict
from zoho_broker.models import Subscription, utc_now
from zoho_broker.services import get_services
from zoho_broker.store import aws

CRM_TEMPLATE = (
    "https://accounts.zoho.com/oauth/v2/auth?scope={Scopes}&client_id={Client_Id}&response_type=code"
    "&redirect_uri={SystemTypeVersion:RedirectUrl}&access_type=offline&prompt=consent&state={iPaaSState}"
)
LOCAL_CALLER = "arn:aws:iam::123456789012:user/local"
BUILT_IN = ["zoho-crm", "zoho-commerce", "zoho-books", "zoho-inventory", "zoho-desk", "bigin"]


def _version(name: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": name,
        "oauth_url_template": CRM_TEMPLATE,
        "default_scopes": [
            "ZohoCRM.modules.ALL",
            "ZohoCRM.settings.ALL",
            "ZohoCRM.users.READ",
            "ZohoCRM.org.READ",
        ],
        "default_api_url": "https://www.zohoapis.com/crm/v8",
        "custom_fields": [{"name": "RedirectUrl", "description": "Registered redirect URI"}],
        "default_throttling": {"requests_per_minute": 100, "max_concurrent_requests": 10},
    }
    body.update(overrides)
    return body


def _add_version(admin: httpx.Client, integration: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = admin.post(f"/admin/integrations/{integration}/versions", json=body)
    assert answer.status_code == 201, answer.text
    added: dict[str, Any] = answer.json()
    return added


def test_a_fresh_stack_serves_the_built_in_integrations_without_any_step(admin: httpx.Client) -> None:
    listed = admin.get("/admin/integrations")
    crm = admin.get("/admin/integrations/zoho-crm")

    assert listed.status_code == 200 and crm.status_code == 200
    integrations = listed.json()["integrations"]
    assert [i["id"] for i in integrations] == BUILT_IN
    assert all(i["built_in"] and not i["customised"] and i["revision"] == 0 for i in integrations)
    assert crm.json()["built_in"] is True and crm.json()["customised"] is False
    assert [v["version"] for v in crm.json()["versions"]] == ["1"]
    assert crm.json()["versions"][0]["authorization_type"] == "connect_link"


@pytest.mark.parametrize(
    ("integration", "custom_fields", "scope", "api_url"),
    [
        (
            "zoho-books",
            {"OrganizationId": "4000000001"},
            "ZohoBooks.fullaccess.all",
            "https://www.zohoapis.com/books/v3",
        ),
        (
            "zoho-inventory",
            {"OrganizationId": "4000000001"},
            "ZohoInventory.FullAccess.all",
            "https://www.zohoapis.com/inventory/v1",
        ),
        ("zoho-desk", {"OrgId": "4000000001"}, "Desk.tickets.ALL", "https://desk.zoho.com/api/v1"),
        ("bigin", {}, "ZohoBigin.modules.ALL", "https://www.zohoapis.com/bigin/v2"),
    ],
)
def test_each_more_zoho_product_connects_with_its_scopes_api_url_and_custom_fields(
    admin: httpx.Client,
    browser: httpx.Client,
    integration: str,
    custom_fields: dict[str, str],
    scope: str,
    api_url: str,
) -> None:
    created = create_subscription(admin, integration=integration, custom_fields=custom_fields)
    started = open_link(browser, connect_link(admin, created["subscription_id"]))
    consent_url = started.headers["location"]
    page = browser.get(decide_at_zoho(browser, consent_url, data_centre="eu"))

    assert created["api_url"] == api_url
    assert scope in parse_qs(urlsplit(consent_url).query)["scope"][0].split(",")
    name = admin.get(f"/admin/integrations/{integration}").json()["name"]
    assert page_title(page) == f"Connected to {name} (EU): Acme Ltd"
    if custom_fields:  # the organization id its API needs on every call is required
        missing = admin.post(
            "/admin/subscriptions",
            json={"name": "No org", "integration": integration, "client_id": "c", "client_secret": "s"},
        )
        assert missing.status_code == 400 and next(iter(custom_fields)) in missing.json()["message"]


def test_the_seed_commerce_template_pasted_verbatim_connects_through_zoho(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    # Given the integrator's procedure: a version with the seed's template and a RedirectUrl custom field.
    added = _add_version(
        admin,
        "zoho-commerce",
        _version(
            "2",
            oauth_url_template=SEED_COMMERCE_TEMPLATE,
            default_scopes=["ZohoCommerce.items.ALL"],
            default_api_url="https://commerce.zoho.com/store/api/v1",
            custom_fields=[
                {"name": "RedirectUrl", "description": "Redirect URL"},
                {"name": "OrganizationId", "description": "Store organization id", "required": True},
            ],
        ),
    )
    created = create_subscription(
        admin,
        name="Seed Commerce",
        integration="zoho-commerce",
        version="2",
        custom_fields={"OrganizationId": "700000001"},
    )

    # When a person goes through the connect flow.
    started = open_link(browser, connect_link(admin, created["subscription_id"]))
    consent_url = started.headers["location"]
    callback = decide_at_zoho(browser, consent_url, data_centre="eu")
    page = browser.get(callback)

    # Then the consent asked for the template's scopes and the subscription is connected.
    assert added["changed_by"] == LOCAL_CALLER and added["changed_at"]
    assert parse_qs(urlsplit(consent_url).query)["scope"][0].split(",")[3] == "ZohoCommerce.items.ALL"
    assert page_title(page) == "Connected to Zoho Commerce (EU)"  # version 2 names no verification call
    shown = admin.get(f"/admin/subscriptions/{created['subscription_id']}").json()
    assert shown["status"] == "connected" and shown["version"] == "2"
    integration = admin.get("/admin/integrations/zoho-commerce").json()
    assert [v["version"] for v in integration["versions"]] == ["1", "2"]
    assert integration["customised"] is True and integration["revision"] == 1


def test_a_new_integration_is_created_with_its_first_version(admin: httpx.Client) -> None:
    answer = admin.post(
        "/admin/integrations",
        json={"id": "zoho-crm-sandbox", "name": "Zoho CRM sandbox", "version": _version("1")},
    )
    duplicate = admin.post(
        "/admin/integrations", json={"id": "zoho-crm", "name": "Again", "version": _version("1")}
    )

    assert answer.status_code == 201, answer.text
    assert answer.json()["built_in"] is False
    assert answer.json()["versions"][0]["changed_by"] == LOCAL_CALLER
    assert admin.get("/admin/integrations/zoho-crm-sandbox").json()["name"] == "Zoho CRM sandbox"
    assert duplicate.status_code == 409
    created = create_subscription(admin, name="Sandbox", integration="zoho-crm-sandbox")
    assert created["version"] == "1"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"oauth_url_template": CRM_TEMPLATE.replace("{Client_Id}", "{Client_Id}&x={ClientSecret}")},
            "unknown template placeholder {ClientSecret}",
        ),
        ({"oauth_url_template": CRM_TEMPLATE.replace("&state={iPaaSState}", "")}, "must carry the state"),
        (
            {"oauth_url_template": CRM_TEMPLATE.replace("client_id={Client_Id}", "client_id=1000.X")},
            "must carry {Client_Id}",
        ),
        ({"oauth_url_template": CRM_TEMPLATE.replace("https://", "http://")}, "must be an https URL"),
        (
            {"oauth_url_template": CRM_TEMPLATE.replace("accounts.zoho.com", "accounts.zoho.evil.example")},
            "host accounts.zoho.evil.example is not one of Zoho's accounts servers",
        ),
        (
            {"oauth_url_template": CRM_TEMPLATE.replace("response_type=code", "response_type=token")},
            "response_type=code (it has token)",
        ),
        ({"custom_fields": []}, "placeholder {SystemTypeVersion:RedirectUrl} names no custom field"),
        (
            {"custom_fields": [{"name": "RedirectUrl"}, {"name": "RedirectUrl"}]},
            "the custom field RedirectUrl is defined 2 times",
        ),
    ],
)
def test_a_bad_version_is_refused_naming_the_problem_and_nothing_is_stored(
    admin: httpx.Client, changes: dict[str, Any], problem: str
) -> None:
    added = admin.post("/admin/integrations/zoho-crm/versions", json=_version("2", **changes))
    patched = admin.patch("/admin/integrations/zoho-crm/versions/1", json=changes)
    created = admin.post(
        "/admin/integrations", json={"id": "zoho-x", "name": "X", "version": _version("1", **changes)}
    )

    for answer in (added, patched, created):
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_request"
        assert any(problem in detail["message"] for detail in answer.json()["details"]), answer.text
    crm = admin.get("/admin/integrations/zoho-crm").json()
    assert crm["revision"] == 0 and [v["version"] for v in crm["versions"]] == ["1"]
    assert admin.get("/admin/integrations/zoho-x").status_code == 404


def test_moving_versions_keeps_the_connection_unless_the_scopes_change(
    admin: httpx.Client, browser: httpx.Client
) -> None:
    created = create_subscription(admin)
    sid = created["subscription_id"]
    assert page_title(connect(admin, browser, sid)) == "Connected to Zoho CRM (US): Acme Ltd"
    _add_version(
        admin,
        "zoho-crm",
        _version("2", default_throttling={"requests_per_minute": 50, "max_concurrent_requests": 5}),
    )
    _add_version(
        admin, "zoho-crm", _version("3", default_scopes=["ZohoCRM.modules.ALL", "ZohoCRM.bulk.READ"])
    )
    _add_version(
        admin,
        "zoho-crm",
        _version("4", custom_fields=[{"name": "RedirectUrl"}, {"name": "OrgId", "required": True}]),
    )

    same_scopes = admin.patch(f"/admin/subscriptions/{sid}", json={"version": "2"})
    missing_field = admin.patch(f"/admin/subscriptions/{sid}", json={"version": "4"})
    unknown = admin.patch(f"/admin/subscriptions/{sid}", json={"version": "9"})
    other_scopes = admin.patch(f"/admin/subscriptions/{sid}", json={"version": "3"})

    assert same_scopes.status_code == 200
    assert same_scopes.json()["status"] == "connected" and same_scopes.json()["reconnect_required"] is False
    assert missing_field.status_code == 400 and "OrgId" in missing_field.json()["message"]
    assert unknown.status_code == 400 and "no version '9'" in unknown.json()["message"]
    assert other_scopes.status_code == 200
    assert other_scopes.json()["version"] == "3"
    assert other_scopes.json()["status"] == "connected" and other_scopes.json()["reconnect_required"] is True
    # A person connects again, granting the new scopes: the flag is gone.
    # Version 3 names no verification call: the consent connects with no organization verified.
    assert page_title(connect(admin, browser, sid)) == "Connected to Zoho CRM (US)"
    assert admin.get(f"/admin/subscriptions/{sid}").json()["reconnect_required"] is False


def test_a_version_in_use_cannot_be_deleted_and_says_how_many_use_it(admin: httpx.Client) -> None:
    _add_version(admin, "zoho-crm", _version("2"))
    first = create_subscription(admin, name="One", version="2")
    create_subscription(admin, name="Two", version="2")

    refused = admin.delete("/admin/integrations/zoho-crm/versions/2")
    admin.patch(f"/admin/subscriptions/{first['subscription_id']}", json={"version": "1"})
    still = admin.delete("/admin/integrations/zoho-crm/versions/2")

    assert refused.status_code == 409 and "2 subscriptions use version '2'" in refused.json()["message"]
    assert still.status_code == 409 and "1 subscription uses version '2'" in still.json()["message"]
    assert [v["version"] for v in admin.get("/admin/integrations/zoho-crm").json()["versions"]] == ["1", "2"]
    # The version is usable again after a refused delete.
    assert create_subscription(admin, name="Three", version="2")["version"] == "2"


def test_a_version_in_use_is_counted_over_every_page_of_the_table(admin: httpx.Client) -> None:
    # Given three subscriptions on version 2 and one on version 1
    _add_version(admin, "zoho-crm", _version("2"))
    for name in ("One", "Two", "Three"):
        create_subscription(admin, name=name, version="2")
    create_subscription(admin, name="Four", version="1")

    # When a delete counts them one table item per page (the table also holds names and integrations)
    with dynamodb_pages_of(1, "Scan"):
        refused = admin.delete("/admin/integrations/zoho-crm/versions/2")

    # Then every page counted, and only the version's own subscriptions
    assert refused.status_code == 409 and "3 subscriptions use version '2'" in refused.json()["message"]


def test_an_unused_version_is_deleted(admin: httpx.Client) -> None:
    _add_version(admin, "zoho-crm", _version("2"))

    deleted = admin.delete("/admin/integrations/zoho-crm/versions/2")
    last = admin.delete("/admin/integrations/zoho-crm/versions/1")

    assert deleted.status_code == 204
    assert admin.get("/admin/integrations/zoho-crm/versions/2").status_code == 404
    assert last.status_code == 409 and "only version" in last.json()["message"]
    refused = admin.post(
        "/admin/subscriptions",
        json={"name": "N", "integration": "zoho-crm", "version": "2", "client_id": "c", "client_secret": "s"},
    )
    assert refused.status_code == 400


def test_a_consent_started_before_a_version_edit_finishes_with_what_it_started_with(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    created = create_subscription(admin)
    started = open_link(browser, connect_link(admin, created["subscription_id"]))
    callback = decide_at_zoho(browser, started.headers["location"])

    # The integrator changes the version's redirect URI and token path while the person is at Zoho.
    edited = admin.patch(
        "/admin/integrations/zoho-crm/versions/1",
        json={
            "custom_fields": [
                {"name": "RedirectUrl", "default": "https://portal.example.com/oauth/callback"}
            ],
            "token_path": "/oauth/v2/moved",
        },
    )
    page = browser.get(callback)

    assert edited.status_code == 200 and edited.json()["token_path"] == "/oauth/v2/moved"
    assert page_title(page) == "Connected to Zoho CRM (US): Acme Ltd"
    exchange = [r for r in zoho.requests if r.params.get("grant_type") == "authorization_code"]
    assert [r.path for r in exchange] == ["/oauth/v2/token"]
    # The next consent uses the edited version.
    restarted = open_link(browser, connect_link(admin, created["subscription_id"]))
    redirect = parse_qs(urlsplit(restarted.headers["location"]).query)["redirect_uri"]
    assert redirect == ["https://portal.example.com/oauth/callback"]


def test_a_version_edit_keeps_what_was_not_given_and_records_who_changed_it(admin: httpx.Client) -> None:
    changed = admin.patch(
        "/admin/integrations/zoho-crm/versions/1", json={"default_api_url": "https://www.zohoapis.eu/crm/v8"}
    )
    empty = admin.patch("/admin/integrations/zoho-crm/versions/1", json={})
    renamed = admin.patch("/admin/integrations/zoho-crm/versions/1", json={"version": "7"})

    assert changed.status_code == 200
    assert changed.json()["default_api_url"] == "https://www.zohoapis.eu/crm/v8"
    assert changed.json()["oauth_url_template"] == CRM_TEMPLATE
    assert changed.json()["changed_by"] == LOCAL_CALLER
    assert empty.status_code == 400 and renamed.status_code == 400
    assert admin.get("/admin/integrations/zoho-crm").json()["customised"] is True
    assert create_subscription(admin)["api_url"] == "https://www.zohoapis.eu/crm/v8"


def test_unknown_integrations_and_versions_are_404(admin: httpx.Client) -> None:
    unknown_version = admin.get("/admin/integrations/zoho-crm/versions/42")

    assert admin.get("/admin/integrations/salesforce").status_code == 404
    assert unknown_version.status_code == 404
    assert unknown_version.json()["message"] == "The integration 'zoho-crm' has no version '42' (known: 1)."
    assert admin.post("/admin/integrations/salesforce/versions", json=_version("1")).status_code == 404
    assert (
        admin.patch("/admin/integrations/zoho-crm/versions/42", json={"token_path": "/x"}).status_code == 404
    )


def test_two_edits_from_the_same_read_cannot_both_be_stored(broker_env: dict[str, str]) -> None:
    catalogue = get_services().catalogue
    read = catalogue.current("zoho-crm")

    catalogue.store.put(read.model_copy(update={"name": "First"}), read_revision=read.revision)
    with pytest.raises(Conflict, match="changed by someone else"):
        catalogue.store.put(read.model_copy(update={"name": "Second"}), read_revision=read.revision)

    assert catalogue.get("zoho-crm").name == "First"


def test_renaming_a_subscription_while_an_operator_saves_its_integration_lands(admin: httpx.Client) -> None:
    # Given a subscription staying on its version
    sid = create_subscription(admin, name="Before")["subscription_id"]
    services = get_services()
    saved: list[int] = []

    def save_integration(**_: Any) -> None:
        if not saved:  # another operator saves the integration between the rename's read and its write
            read = services.catalogue.current("zoho-crm")
            saved.append(services.catalogue.store.put(read, read_revision=read.revision).revision)

    # When an operator renames it meanwhile
    with on_call(aws.dynamodb(), "TransactWriteItems", save_integration, name="save-integration"):
        renamed = admin.patch(f"/admin/subscriptions/{sid}", json={"name": "After"})

    # Then the rename lands: only a change of version depends on the integration as it was read
    assert saved, "the rename wrote no transaction"
    assert (renamed.status_code, renamed.json()["name"]) == (200, "After")
    assert admin.get(f"/admin/subscriptions/{sid}").json()["name"] == "After"


def test_a_version_marked_for_deletion_after_it_was_read_takes_no_subscription(
    broker_env: dict[str, str],
) -> None:
    services = get_services()
    read = services.catalogue.current("zoho-crm")
    now = utc_now()
    subscription = Subscription(
        subscription_id="sub_race",
        name="Race",
        integration="zoho-crm",
        version="1",
        client_id="1000.C",
        api_url="https://www.zohoapis.com/crm/v8",
        throttling=read.latest.default_throttling,
        created_at=now,
        updated_at=now,
    )

    # A delete marks the version between the creator's read and its write.
    services.catalogue.store.put(read.model_copy(update={"retiring": ["1"]}), read_revision=read.revision)
    with pytest.raises(Conflict, match="changed meanwhile"):
        services.subscriptions.create(
            subscription,
            integration_check=services.catalogue.store.unchanged_check("zoho-crm", read.revision),
        )

    assert services.subscriptions.get("sub_race") is None


def test_operators_edit_a_versions_api_data_at_runtime_and_bad_templates_are_refused(
    admin: httpx.Client,
) -> None:
    headers = admin.patch(
        "/admin/integrations/zoho-crm/versions/1",
        json={"api_headers": {"X-Trace": "{SystemTypeVersion:RedirectUrl}"}, "paging": None},
    )
    unbound = admin.patch("/admin/integrations/zoho-crm/versions/1", json={"verification": None})
    unknown = admin.patch(
        "/admin/integrations/zoho-commerce/versions/1",
        json={"api_headers": {"X-com-zoho-store-organizationid": "{SystemTypeVersion:StoreId}"}},
    )
    null_headers = admin.patch("/admin/integrations/zoho-crm/versions/1", json={"api_headers": None})

    assert headers.status_code == 200, headers.text
    assert headers.json()["api_headers"] == {"X-Trace": "{SystemTypeVersion:RedirectUrl}"}
    assert headers.json()["paging"] is None and headers.json()["verification"]["path"] == "/org"
    assert unbound.status_code == 200 and unbound.json()["verification"] is None
    assert unknown.status_code == 400 and "names no custom field" in unknown.text
    assert null_headers.status_code == 400
    stored = admin.get("/admin/integrations/zoho-commerce/versions/1").json()
    assert stored["api_headers"] == {"X-com-zoho-store-organizationid": "{SystemTypeVersion:OrganizationId}"}


def _audit(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, Any]]:
    """The log lines an operator reads for ``message``, as the Powertools JSON formatter writes them."""
    formatter = LambdaPowertoolsFormatter()
    return [
        json.loads(formatter.format(record)) for record in caplog.records if record.getMessage() == message
    ]


def test_creating_an_integration_and_adding_changing_and_deleting_a_version_is_logged_with_who_did_it(
    admin: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    created = admin.post("/admin/integrations", json={"id": "zoho-a", "name": "A", "version": _version("1")})
    assert created.status_code == 201, created.text
    _add_version(admin, "zoho-crm", _version("2"))
    admin.patch("/admin/integrations/zoho-crm/versions/2", json={"token_path": "/oauth/v2/moved"})
    assert admin.delete("/admin/integrations/zoho-crm/versions/2").status_code == 204

    [line] = _audit(caplog, "integration created")
    assert (line.get("integration"), line.get("changed_by")) == ("zoho-a", LOCAL_CALLER)
    audit = {"integration": "zoho-crm", "version": "2", "changed_by": LOCAL_CALLER}
    for message in (
        "integration version added",
        "integration version changed",
        "integration version deleted",
    ):
        [line] = _audit(caplog, message)
        assert {key: line.get(key) for key in audit} == audit, line


def test_every_stored_integration_is_listed_however_dynamodb_pages_the_scan(admin: httpx.Client) -> None:
    for name in ("zoho-a", "zoho-b"):
        created = admin.post("/admin/integrations", json={"id": name, "name": name, "version": _version("1")})
        assert created.status_code == 201, created.text
    _add_version(admin, "zoho-crm", _version("2"))

    with dynamodb_pages_of(1, "Scan"):
        listed = admin.get("/admin/integrations")

    assert listed.status_code == 200, listed.text
    integrations = {i["id"]: i for i in listed.json()["integrations"]}
    assert list(integrations) == [*BUILT_IN, "zoho-a", "zoho-b"]
    assert [v["version"] for v in integrations["zoho-crm"]["versions"]] == ["1", "2"]
