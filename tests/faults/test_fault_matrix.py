"""Every AWS and Zoho call of every flow, failed once in each way it really fails.

For each flow the calls are first recorded on a fault-free run; then, for each call and each kind of
failure of its service, a fresh subscription goes through the same flow with exactly that call failing.
After each run the invariants below are checked, then the flow is retried the way its user would
(open the same link again, send the same request again, the next schedule) and must succeed.

Invariants: no 500 (only a 4xx, 502 or 503 with a message); a transient failure never flags a
subscription for re-authentication nor burns a connect link; every refresh token Zoho still honours is
either the subscription's own or recorded for revocation; no secret without its subscription; a
connected subscription's secret holds a live refresh token of the data centre the item names, and a
not-connected one holds none; a refresh token awaiting revocation keeps the subscription scheduled.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest

from broker_local.functions import function_entry
from broker_local.gateway import LambdaContext, LocalApiGateway, import_handler
from broker_local.scheduler import sqs_event
from broker_local.zoho_standin import ZohoStandIn
from tests.conftest import ROOT, TEMPLATE
from tests.faults.injection import Call, CallLog, install
from tests.held_secrets import secret_or_none
from tests.integration.flow import connect, connect_link, decide_at_zoho, open_link
from tests.integration.stored import expire_token
from zoho_broker.logic import refresh
from zoho_broker.services import get_services, reset_services

pytestmark = pytest.mark.slow

SECRET = "zoho-client-secret-faults-0123456789"
OTHER_ACCOUNT = "admin@globex.example"


@dataclass
class Scenario:
    admin: httpx.Client
    browser: httpx.Client
    zoho: ZohoStandIn
    client_id: str = field(default_factory=lambda: f"1000.FAULT{uuid.uuid4().hex[:16].upper()}")
    subscription_id: str = ""
    link: str = ""
    callback_url: str = ""
    last_page: str = ""
    kind: str = ""  # the flow's first word: revoke, delete and update disconnect on purpose
    version: str | None = None  # the integration version to create the subscription on; None: the latest
    grant_code: str = ""  # a Self Client grant code the account owner generated
    account: str | None = None  # who signs in at Zoho's consent page; None: the stand-in's first account
    callback_statuses: tuple[int, ...] = (200,)  # what a callback that did its job answers
    throttling: dict[str, int] | None = None  # the subscription's own; None: the version's

    @property
    def name(self) -> str:
        return f"Faults {self.client_id}"

    def create_body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "integration": "zoho-crm",
            "client_id": self.client_id,
            "client_secret": SECRET,
            **({"version": self.version} if self.version else {}),
            **({"throttling": self.throttling} if self.throttling else {}),
        }


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None
    detail: str = ""


# ------------------------------------------------------------------------------------------------
# Steps the flows are made of


def _answer(response: httpx.Response, *expected: int) -> Outcome:
    """The status, and what the answer tells its reader: a JSON message or a page's heading and text."""
    if response.headers.get("content-type", "").startswith("application/json"):
        said = str(response.json().get("message", "")) if isinstance(response.json(), dict) else ""
    else:
        said = " ".join(re.findall(r"<(?:h1|p)[^>]*>(.*?)</(?:h1|p)>", response.text))
    return Outcome(response.status_code in expected, response.status_code, said[:300])


def _create(s: Scenario) -> None:
    answer = s.admin.post("/admin/subscriptions", json=s.create_body())
    assert answer.status_code == 201, answer.text
    s.subscription_id = answer.json()["subscription_id"]


def _connected(s: Scenario) -> None:
    _create(s)
    assert connect(s.admin, s.browser, s.subscription_id, data_centre="eu").status_code == 200


def _consent_under_way(s: Scenario) -> None:
    s.link = connect_link(s.admin, s.subscription_id)
    started = open_link(s.browser, s.link)
    assert started.status_code == 302, started.text
    s.callback_url = decide_at_zoho(
        s.browser, started.headers["location"], data_centre="eu", account=s.account
    )


def _table() -> str:
    return get_services().settings.subscriptions_table


def _item(s: Scenario) -> dict[str, Any] | None:
    found = boto3.client("dynamodb").get_item(
        TableName=_table(), Key={"pk": {"S": f"sub#{s.subscription_id}"}}
    )
    item = found.get("Item")
    return {k: next(iter(v.values())) for k, v in item.items()} if item else None


def _secret(s: Scenario) -> dict[str, Any] | None:
    return secret_or_none(get_services().settings.secret_prefix + s.subscription_id)


def _aged(s: Scenario) -> None:
    """The access token expires in a minute and the refresh is due now (in the due partition, unleased)."""
    expire_token(get_services(), s.subscription_id, seconds_left=60)
    _due_now(s)


def _due_now(s: Scenario) -> None:
    """What time does for a backed-off subscription: its retry comes due (and any lease runs out)."""
    boto3.client("dynamodb").update_item(
        TableName=_table(),
        Key={"pk": {"S": f"sub#{s.subscription_id}"}},
        UpdateExpression="SET refresh_due_at = :now, refresh_partition = :p REMOVE lease_owner, lease_expires_at",
        ExpressionAttributeValues={":now": {"N": str(int(time.time()) - 1)}, ":p": {"S": "due"}},
    )


def _lease_ran_out(s: Scenario) -> None:
    if _item(s) is not None:
        boto3.client("dynamodb").update_item(
            TableName=_table(),
            Key={"pk": {"S": f"sub#{s.subscription_id}"}},
            UpdateExpression="REMOVE lease_owner, lease_expires_at",
        )


def _fresh(s: Scenario) -> bool:
    secret = _secret(s)
    expires = secret and secret.get("access_token_expires_at")
    return bool(expires) and datetime.fromisoformat(str(expires)) > datetime.now(UTC) + timedelta(minutes=10)


def _invoke(function_id: str, event: dict[str, Any]) -> Any:
    handler = import_handler(function_entry(TEMPLATE, function_id), ROOT)
    return handler(event, LambdaContext.for_function(function_id))


def _scheduled(function_id: str, event: dict[str, Any], s: Scenario) -> Outcome:
    try:
        answer = _invoke(function_id, event)
    except Exception as error:  # the platform retries a failed invocation; state must still be right
        return Outcome(False, None, f"raised {type(error).__name__}")
    if isinstance(answer, dict) and answer.get("batchItemFailures"):
        return Outcome(False, None, "batch item failed")
    return Outcome(_fresh(s), None)


def _sweep(s: Scenario) -> Outcome:
    return _scheduled("RefresherFunction", {"source": "aws.events", "detail-type": "Scheduled Event"}, s)


def _work(s: Scenario) -> Outcome:
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "r1",
        "Body": json.dumps({"subscription_id": s.subscription_id}),
    }
    return _scheduled(
        "RefreshWorkerFunction", sqs_event([message], "arn:aws:sqs:eu-west-1:123456789012:q", "eu-west-1"), s
    )


def _as_the_page_says(s: Scenario) -> Outcome:
    """A failed callback page says either to open the same link again or to try again (reload)."""
    if "same connect link again" not in s.last_page:
        return _answer(s.browser.get(s.callback_url), *s.callback_statuses)
    started = open_link(s.browser, s.link)
    if started.status_code != 302:
        return _answer(started, 302)
    callback = decide_at_zoho(s.browser, started.headers["location"], data_centre="eu", account=s.account)
    return _answer(s.browser.get(callback), *s.callback_statuses)


# ------------------------------------------------------------------------------------------------
# The flows: how to get there, the step under test, and what its user does after a failure.


@dataclass(frozen=True)
class Flow:
    name: str
    setup: Callable[[Scenario], None]
    act: Callable[[Scenario], Outcome]
    ends_connected: bool | None  # the state a success leaves; None: as it was
    retry: Callable[[Scenario], Outcome] | None = None  # what the user does next; None: the same again


def _callback(s: Scenario) -> Outcome:
    outcome = _answer(s.browser.get(s.callback_url), *s.callback_statuses)
    s.last_page = outcome.detail
    return outcome


def _link_issued(s: Scenario) -> None:
    _create(s)
    s.link = connect_link(s.admin, s.subscription_id)


def _first_consent(s: Scenario) -> None:
    _create(s)
    _consent_under_way(s)


def _second_consent(s: Scenario) -> None:
    _connected(s)
    _consent_under_way(s)


def _another_organizations_consent(s: Scenario) -> None:
    """Connected (bound to the first account's organization); then another organization's account consents."""
    _connected(s)
    s.account, s.callback_statuses = OTHER_ACCOUNT, (409,)
    _consent_under_way(s)


def _connected_and_aged(s: Scenario) -> None:
    _connected(s)
    _aged(s)


def _next_schedule(run: Callable[[Scenario], Outcome]) -> Callable[[Scenario], Outcome]:
    def retry(s: Scenario) -> Outcome:
        _due_now(s)
        return run(s)

    return retry


def _patch(s: Scenario) -> httpx.Response:
    return s.admin.patch(
        f"/admin/subscriptions/{s.subscription_id}",
        json={"client_id": s.client_id + "NEW", "client_secret": SECRET + "-new"},
    )


def _create_act(s: Scenario) -> Outcome:
    answer = s.admin.post("/admin/subscriptions", json=s.create_body())
    if answer.status_code == 201:
        s.subscription_id = answer.json()["subscription_id"]
    return _answer(answer, 201)


SELF_CLIENT_VERSION = {
    "version": "self",
    "authorization_type": "self_client",
    "default_scopes": ["ZohoCRM.modules.ALL"],
    "default_api_url": "https://www.zohoapis.com/crm/v8",
    "default_throttling": {"requests_per_minute": 100, "max_concurrent_requests": 10},
    "verification": {
        "path": "/org",
        "organization_id": "org[0].id",
        "organization_name": "org[0].company_name",
    },
}


def _grant_code_generated(s: Scenario) -> None:
    """A subscription on a Self Client version, and a grant code its account owner generated (EU)."""
    # An earlier scenario may have added it: then adding it again is a conflict.
    existed = s.admin.get("/admin/integrations/zoho-crm/versions/self").status_code == 200
    added = s.admin.post("/admin/integrations/zoho-crm/versions", json=SELF_CLIENT_VERSION)
    assert added.status_code == (409 if existed else 201), added.text
    s.version = "self"
    _create(s)
    s.grant_code = s.zoho.issue_self_client_code(
        client_id=s.client_id, scope="ZohoCRM.modules.ALL", data_centre="eu"
    )


def _submit_grant_code(s: Scenario) -> Outcome:
    path = f"/admin/subscriptions/{s.subscription_id}/grant-code"
    return _answer(s.admin.post(path, json={"code": s.grant_code, "data_centre": "eu"}), 200)


def _with_a_new_grant_code(s: Scenario) -> Outcome:
    """What the answer says: a grant code works once, so the owner generates a new one."""
    s.grant_code = s.zoho.issue_self_client_code(
        client_id=s.client_id, scope="ZohoCRM.modules.ALL", data_centre="eu"
    )
    return _submit_grant_code(s)


FLOWS = [
    Flow(
        "start",
        _link_issued,
        lambda s: _answer(open_link(s.browser, s.link), 302),
        ends_connected=None,
    ),
    Flow(
        "callback (first connection)",
        _first_consent,
        _callback,
        ends_connected=True,
        retry=_as_the_page_says,
    ),
    Flow(
        "callback (reconnection)",
        _second_consent,
        _callback,
        ends_connected=True,
        retry=_as_the_page_says,
    ),
    Flow(
        "callback (another organization, refused)",
        _another_organizations_consent,
        _callback,
        ends_connected=True,
        retry=_as_the_page_says,
    ),
    Flow(
        "grant code (Self Client)",
        _grant_code_generated,
        _submit_grant_code,
        ends_connected=True,
        retry=_with_a_new_grant_code,
    ),
    Flow(
        "token",
        _connected_and_aged,
        lambda s: _answer(s.admin.get(f"/admin/subscriptions/{s.subscription_id}/token"), 200),
        ends_connected=True,
    ),
    Flow(
        "refresh now",
        _connected,
        lambda s: _answer(s.admin.post(f"/admin/subscriptions/{s.subscription_id}/refresh"), 200),
        ends_connected=True,
    ),
    Flow(
        "revoke",
        _connected,
        lambda s: _answer(s.admin.post(f"/admin/subscriptions/{s.subscription_id}/revoke"), 200),
        ends_connected=False,
    ),
    Flow("create", lambda s: None, _create_act, ends_connected=False),
    Flow(
        "update (new client)",
        _connected,
        lambda s: _answer(_patch(s), 200),
        ends_connected=False,
    ),
    Flow(
        "delete",
        _connected,
        lambda s: _answer(s.admin.delete(f"/admin/subscriptions/{s.subscription_id}"), 204),
        ends_connected=None,
        retry=lambda s: _answer(s.admin.delete(f"/admin/subscriptions/{s.subscription_id}"), 204, 404),
    ),
    Flow(
        "sweep",
        _connected_and_aged,
        _sweep,
        ends_connected=True,
        retry=_next_schedule(_sweep),
    ),
    Flow(
        "worker",
        _connected_and_aged,
        _work,
        ends_connected=True,
        retry=_next_schedule(_work),
    ),
]


# ------------------------------------------------------------------------------------------------
# Invariants


def violations(s: Scenario, outcome: Outcome, *, was_connected: bool) -> list[str]:
    found: list[str] = []
    if outcome.status is not None and (outcome.status == 500 or outcome.status > 503):
        found.append(f"answered {outcome.status}: {outcome.detail}")
    if outcome.status is not None and outcome.status >= 500 and "again" not in outcome.detail.lower():
        found.append(f"{outcome.status} without saying to try again: {outcome.detail}")
    live = s.zoho.live_refresh_tokens(s.client_id) | s.zoho.live_refresh_tokens(s.client_id + "NEW")
    item = _item(s) if s.subscription_id else None
    secret = _secret(s) if s.subscription_id else None
    recorded = set()
    if secret:
        recorded = {secret.get("refresh_token")} | {
            p["refresh_token"] for p in secret.get("pending_revocations", [])
        }
    if live - recorded:
        found.append(f"{len(live - recorded)} refresh token(s) alive at Zoho and recorded nowhere")
    if secret is not None and item is None:
        found.append("a secret without its subscription")
    if item is not None and secret and secret.get("pending_revocations") and not _scheduled_again(item):
        found.append("a refresh token awaits revocation, but the refresher is not scheduled to come back")
    if item is not None:
        status = item.get("status")
        if status == "needs_reauthentication":
            found.append("a passing failure flagged the subscription for re-authentication")
        if status == "connected":
            if secret is None or secret.get("refresh_token") not in live:
                found.append("connected, but the secret holds no live refresh token")
            elif secret.get("data_centre") != item.get("data_centre"):
                found.append("the item and the secret name different data centres")
            else:
                found.extend(_binding_problems(s, item, secret))
        elif secret is not None and secret.get("refresh_token") in live:
            found.append(f"{status}, but the secret holds a live refresh token")
        if (
            was_connected
            and status != "connected"
            and outcome.ok is False
            and s.kind not in ("revoke", "delete", "update")
        ):
            found.append("a failed attempt lost a working connection")
    found.extend(_orphaned_secrets())
    return found


def _scheduled_again(item: dict[str, Any]) -> bool:
    """In the refresh index: the sweep visits the subscription when its time comes."""
    return item.get("refresh_partition") == "due" and item.get("refresh_due_at") is not None


def _binding_problems(s: Scenario, item: dict[str, Any], secret: dict[str, Any]) -> list[str]:
    """A bound subscription's tokens reach the organization it is bound to, never another one."""
    bound = item.get("organization")
    reached = s.zoho.refresh_token_organization(str(secret.get("refresh_token")))
    if isinstance(bound, dict) and reached is not None and bound.get("id", {}).get("S") != reached:
        return [f"bound to organization {bound.get('id')}, but its tokens reach {reached}"]
    if s.account is not None and reached != s.zoho.api.account(None).organization.id:
        return ["another organization's consent replaced the connection"]
    return []


def _orphaned_secrets() -> list[str]:
    prefix = get_services().settings.secret_prefix
    names = [
        entry["Name"]
        for page in boto3.client("secretsmanager").get_paginator("list_secrets").paginate()
        for entry in page["SecretList"]
        if entry["Name"].startswith(prefix)
    ]
    missing = []
    for name in names:
        sid = name.removeprefix(prefix)
        if (
            boto3.client("dynamodb").get_item(TableName=_table(), Key={"pk": {"S": f"sub#{sid}"}}).get("Item")
            is None
        ):
            missing.append(f"secret {sid} has no subscription")
    return missing


# ------------------------------------------------------------------------------------------------
# The matrix


@dataclass
class Result:
    flow: str
    call: Call
    fault: str
    problems: list[str]


@pytest.fixture
def fresh_services(gateway: LocalApiGateway) -> Iterator[None]:
    yield
    reset_services()


def _run(
    flow: Flow, admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, fail_at: int | None, fault: str
) -> tuple[CallLog, Scenario, list[str]]:
    reset_services()
    log = CallLog()
    install(log, get_services())
    scenario = Scenario(admin, browser, zoho, kind=flow.name.split()[0])
    flow.setup(scenario)
    was_connected = (
        (_item(scenario) or {}).get("status") == "connected" if scenario.subscription_id else False
    )
    log.calls.clear()
    log.fail_at, log.fault = fail_at, fault
    outcome = flow.act(scenario)
    log.stop()
    acted = CallLog(calls=list(log.calls), failed=log.failed)
    problems = violations(scenario, outcome, was_connected=was_connected)
    if fail_at is None and not outcome.ok:
        problems.append(f"the flow fails without a fault: {outcome}")
    if not outcome.ok:
        _lease_ran_out(scenario)
        retried = (flow.retry or flow.act)(scenario)
        if not retried.ok:
            problems.append(f"the retry did not succeed: {retried}")
        problems += [f"after the retry: {p}" for p in violations(scenario, retried, was_connected=False)]
    ended = _item(scenario) if scenario.subscription_id else None
    if (
        flow.ends_connected is not None
        and ended
        and (ended.get("status") == "connected") != flow.ends_connected
    ):
        problems.append(f"ended {ended.get('status')}")
    if scenario.subscription_id and _item(scenario) and (_secret(scenario) or {}).get("pending_revocations"):
        # What the refresher does when the subscription comes due: revoke what was let go of.
        _due_now(scenario)
        refresh.refresh(get_services(), scenario.subscription_id)
        if (_secret(scenario) or {}).get("pending_revocations"):
            problems.append("the refresher did not revoke the pending refresh tokens")
    if scenario.subscription_id and _item(scenario):
        # Out of the index, so the next scenario's sweep sees its own subscription only.
        boto3.client("dynamodb").update_item(
            TableName=_table(),
            Key={"pk": {"S": f"sub#{scenario.subscription_id}"}},
            UpdateExpression="REMOVE refresh_partition, refresh_due_at",
        )
    return acted, scenario, problems


@pytest.mark.parametrize("flow", FLOWS, ids=[flow.name for flow in FLOWS])
def test_every_call_of_the_flow_failing_once_leaves_a_clean_state(
    flow: Flow,
    fresh_services: None,
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    check_every_call(flow, admin, browser, zoho, capsys)


def check_every_call(
    flow: Flow,
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each call of the flow failed once in each way: every invariant holds (tests/faults/*.py use it)."""
    log, _, problems = _run(flow, admin, browser, zoho, None, "")
    assert not problems, f"{flow.name} without faults: {problems}"
    calls = list(log.calls)
    assert calls, f"{flow.name} made no call"
    results: list[Result] = []
    for index, call in enumerate(calls):
        for fault in call.faults:
            run_log, _, problems = _run(flow, admin, browser, zoho, index, fault)
            if run_log.failed != call:
                problems.append(f"the run took another path: call {index} was {run_log.failed}")
            results.append(Result(flow.name, call, fault, problems))
    failed = [r for r in results if r.problems]
    with capsys.disabled():
        print(
            f"\nfault matrix, {flow.name}: {len(calls)} calls ({', '.join(map(str, calls))}), "
            f"{len(results)} injected failures, {len(results) - len(failed)} held every invariant"
        )
    assert not failed, "\n".join(f"{r.call} / {r.fault}: {r.problems}" for r in failed)
