"""The world: moto provisioned from template.yaml, the stand-in, the functions' environment, and N
connected subscriptions seeded with real refresh tokens, all due."""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoho_broker.models import SubscriptionCreate, SubscriptionSecret
    from zoho_broker.services import Services


from .common import (
    DATA_CENTRE,
    DYNAMODB_BATCH,
    EXPIRED_AGO,
    INTEGRATION,
    REDIRECT_URI,
    REFERENCE_SUBSCRIPTIONS,
    ROOT,
    SEED_CHUNK,
    WORKER_FUNCTION,
)
from .fast_queue import FastQueue
from .instruments import CallCounter, ZohoTimer
from .processes import RemoteStandIn


@dataclass
class World:
    template: dict[str, Any]
    standin: RemoteStandIn
    services: Services
    calls: CallCounter
    zoho_timer: ZohoTimer
    dead_letter_url: str
    batch_size: int
    fast_queue: FastQueue  # the refresh queue: its url and arn
    # How long ago the seeded access tokens expired (negative: how far ahead they expire).
    expired_ago: timedelta = EXPIRED_AGO


def open_world(standin: RemoteStandIn) -> World:
    from broker_local.functions import function_environment, queue_sources
    from broker_local.template import load_template, provision
    from zoho_broker.services import get_services, reset_services
    from zoho_broker.store import aws

    template = load_template(ROOT / "template.yaml")
    stack = provision(template)
    environment = function_environment(template, stack, WORKER_FUNCTION)
    environment["BROKER_ZOHO_ACCOUNTS_SERVERS"] = json.dumps(standin.accounts_servers)
    os.environ.update(environment)
    reset_services()
    services = get_services()
    # Made here, once, as in a warm container: boto3 clients are not safe to create from several threads.
    for made in (services.subscriptions, services.secrets, services.refresh_queue, services.announcer):
        assert made is not None
    assert services.accounts_servers is not None
    calls = CallCounter()
    for client in (aws.dynamodb(), aws.secretsmanager(), aws.sqs(), aws.events()):
        calls.attach(client)
    (source,) = [item for item in queue_sources(template, stack) if item.function_id == WORKER_FUNCTION]
    queue_logical_id = next(
        logical_id for logical_id, url in stack.physical_ids.items() if url == source.queue_url
    )
    attributes = aws.sqs().get_queue_attributes(QueueUrl=source.queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    redrive = json.loads(attributes.get("RedrivePolicy") or "{}")
    fast_queue = FastQueue(
        source.queue_url,
        stack.attributes[queue_logical_id]["Arn"],
        visibility_timeout=int(attributes["VisibilityTimeout"]),
        max_receive_count=int(redrive.get("maxReceiveCount", 1_000_000)),
    )
    fast_queue.attach(aws.sqs())
    return World(
        template=template,
        standin=standin,
        services=services,
        calls=calls,
        zoho_timer=ZohoTimer(services.zoho),
        dead_letter_url=stack.physical_ids["RefreshDeadLetterQueue"],
        batch_size=source.batch_size,
        fast_queue=fast_queue,
    )


@dataclass
class Seeded:
    subscription_id: str
    client_id: str
    refresh_token: str
    access_token: str


@dataclass
class SeedReport:
    seconds: float
    reference: int
    bulk: int


def _client(index: int, run: str) -> SubscriptionCreate:
    """A subscription with a customer's own API Console client, as the admin API takes it."""
    from zoho_broker.models import SubscriptionCreate

    return SubscriptionCreate.model_validate(
        {
            "name": f"Bench {run} customer {index:05d}",
            "integration": INTEGRATION,
            "client_id": f"1000.BENCH{run.upper()}{index:05d}",
            "client_secret": secrets.token_hex(21),
        }
    )


def seed(world: World, n: int) -> tuple[list[Seeded], SeedReport]:
    from zoho_broker.logic import subscriptions
    from zoho_broker.models import utc_now

    services, standin = world.services, world.standin
    version = services.catalogue.get(INTEGRATION).latest
    scope = ",".join(version.default_scopes)
    token_url = services.accounts_servers.url_for(DATA_CENTRE) + version.token_path
    run = secrets.token_hex(3)
    started = time.perf_counter()
    standin.set_latency(0)

    def exchange(body: SubscriptionCreate) -> Any:
        client_secret = body.client_secret.get_secret_value()
        standin.register_client(body.client_id, client_secret)
        code = standin.issue_code(
            client_id=body.client_id, redirect_uri=REDIRECT_URI, scope=scope, data_centre=DATA_CENTRE
        )
        return services.zoho.exchange_code(
            token_url=token_url,
            client_id=body.client_id,
            client_secret=client_secret,
            code=code,
            redirect_uri=REDIRECT_URI,
        )

    seeded: list[Seeded] = []
    reference = min(n, REFERENCE_SUBSCRIPTIONS)
    for index in range(reference):
        body = _client(index, run)
        sid = subscriptions.create(services, body).subscription_id
        tokens = exchange(body)
        assert tokens.refresh_token, "the stand-in issued no refresh token for an offline code"
        now = utc_now()
        expired = now - world.expired_ago
        owner = f"seed:{uuid.uuid4().hex}"
        if services.subscriptions.acquire_lease(sid, owner=owner, now=int(time.time()), seconds=60) is None:
            raise RuntimeError("could not take the lease of a new subscription")
        secret = services.secrets.get(sid)
        assert secret is not None
        services.secrets.put(
            sid,
            secret.model_copy(
                update={
                    "refresh_token": tokens.refresh_token,
                    "access_token": tokens.access_token,
                    "access_token_expires_at": expired,
                    "api_domain": tokens.api_domain,
                    "data_centre": DATA_CENTRE,
                    "token_type": tokens.token_type,
                }
            ),
        )
        services.subscriptions.record_connection(
            sid,
            data_centre=DATA_CENTRE,
            api_domain=tokens.api_domain,
            access_token_expires_at=expired,
            connected_at=now,
            refresh_due_at=int(expired.timestamp()),
            lease_owner=owner,
            reconnected_from=None,
        )
        seeded.append(Seeded(sid, body.client_id, tokens.refresh_token, tokens.access_token))

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="seed-exchange") as pool:
        for start in range(reference, n, SEED_CHUNK):
            clients = [_client(index, run) for index in range(start, min(n, start + SEED_CHUNK))]
            minted = list(pool.map(exchange, clients))
            seeded.extend(_write_bulk(world, clients, minted))

    _check_bulk_matches_reference(world, seeded[0].subscription_id, seeded[-1].subscription_id)
    return seeded, SeedReport(time.perf_counter() - started, reference, n - reference)


def _write_bulk(world: World, clients: Sequence[SubscriptionCreate], minted: Sequence[Any]) -> list[Seeded]:
    """The items create() and record_connection() would leave, and secrets holding the tokens."""
    from zoho_broker.models import (
        ConnectionStatus,
        Subscription,
        SubscriptionSecret,
        utc_now,
    )
    from zoho_broker.store.subscriptions import REFRESH_PARTITION

    services = world.services
    store = services.subscriptions
    integration = services.catalogue.get(INTEGRATION)
    version = integration.latest
    items: list[dict[str, Any]] = []
    seeded: list[Seeded] = []
    for body, tokens in zip(clients, minted, strict=True):
        now = utc_now()
        expired = now - world.expired_ago
        subscription = Subscription(
            subscription_id="sub_" + secrets.token_hex(8),
            name=body.name,
            integration=integration.id,
            version=version.version,
            client_id=body.client_id,
            api_url=version.default_api_url,
            throttling=version.default_throttling,
            custom_fields={},
            status=ConnectionStatus.CONNECTED,
            data_centre=DATA_CENTRE,
            api_domain=tokens.api_domain,
            access_token_expires_at=expired,
            connected_at=now,
            last_refreshed_at=now,
            refresh_due_at=int(expired.timestamp()),
            created_at=now,
            updated_at=now,
        )
        item = store._item(subscription)
        item["refresh_partition"] = {"S": REFRESH_PARTITION}
        items += [item, store._name_guard(subscription)]
        services.secrets.create(
            subscription.subscription_id,
            SubscriptionSecret(
                client_id=body.client_id,
                client_secret=body.client_secret.get_secret_value(),
                refresh_token=tokens.refresh_token,
                access_token=tokens.access_token,
                access_token_expires_at=expired,
                api_domain=tokens.api_domain,
                data_centre=DATA_CENTRE,
                token_type=tokens.token_type,
            ),
        )
        seeded.append(
            Seeded(subscription.subscription_id, body.client_id, tokens.refresh_token, tokens.access_token)
        )
    batch_put(world, items)
    return seeded


def batch_put(world: World, items: Sequence[dict[str, Any]]) -> None:
    from zoho_broker.store import aws

    table = world.services.settings.subscriptions_table
    for start in range(0, len(items), DYNAMODB_BATCH):
        requests: dict[str, Any] = {
            table: [{"PutRequest": {"Item": item}} for item in items[start : start + DYNAMODB_BATCH]]
        }
        while requests:
            answer = aws.dynamodb().batch_write_item(RequestItems=requests)
            requests = dict(answer.get("UnprocessedItems") or {})


def _check_bulk_matches_reference(world: World, reference_id: str, bulk_id: str) -> None:
    from zoho_broker.store import aws

    def shape(subscription_id: str) -> dict[str, str]:
        answer = aws.dynamodb().get_item(
            TableName=world.services.settings.subscriptions_table,
            Key={"pk": {"S": "sub#" + subscription_id}},
            ConsistentRead=True,
        )
        return {name: next(iter(value)) for name, value in answer["Item"].items()}

    real, bulk = shape(reference_id), shape(bulk_id)
    if real != bulk:
        raise SystemExit(f"bulk-seeded items differ from real ones: real {real}, bulk {bulk}")


def scan_subscriptions(world: World, *, projection: str | None = None) -> Iterator[dict[str, Any]]:
    """Every subscription item (not the name guards), page by page."""
    from zoho_broker.store import aws

    kwargs: dict[str, Any] = {"TableName": world.services.settings.subscriptions_table}
    if projection:  # moto's scan is slow; it is faster with fewer attributes
        kwargs.update(ProjectionExpression=projection, ExpressionAttributeNames={"#status": "status"})
    while True:
        page = aws.dynamodb().scan(**kwargs)
        for item in page.get("Items", []):
            if item["pk"]["S"].startswith("sub#"):
                yield item
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def make_due(world: World, seeded: list[Seeded], secrets: dict[str, SubscriptionSecret]) -> float:
    """Expire the access token of the subscriptions in ``secrets`` again, in their items and secrets.

    Remembers each one's current access token, so the next verification can tell it changed.
    """
    from zoho_broker.models import utc_now

    started = time.perf_counter()
    world.calls.phase = "setup"
    expired = utc_now() - world.expired_ago
    for subscription in seeded:
        secret = secrets.get(subscription.subscription_id)
        if secret is None:
            continue
        assert secret.access_token is not None
        subscription.access_token = secret.access_token
        world.services.secrets.put(
            subscription.subscription_id, secret.model_copy(update={"access_token_expires_at": expired})
        )
    items = [item for item in scan_subscriptions(world) if item["pk"]["S"].removeprefix("sub#") in secrets]
    for item in items:
        item["refresh_due_at"] = {"N": str(int(expired.timestamp()))}
        item["access_token_expires_at"] = {"S": expired.isoformat()}
    batch_put(world, items)
    world.calls.phase = "after"
    return time.perf_counter() - started


def reset_after_memory_pass(world: World, seeded: list[Seeded]) -> float:
    """Empty the queue, and make the subscriptions the memory pass refreshed due again."""
    started = time.perf_counter()
    world.fast_queue.purge()
    still_due = set(world.services.subscriptions.due_for_refresh(due_before=int(time.time())))
    refreshed = {
        subscription.subscription_id: world.services.secrets.get(subscription.subscription_id)
        for subscription in seeded
        if subscription.subscription_id not in still_due
    }
    return time.perf_counter() - started + make_due(world, seeded, refreshed)
