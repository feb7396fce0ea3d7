"""Everything a use case needs, made once per process (a Lambda container) from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import TYPE_CHECKING

from zoho_broker.catalogue import load_catalogue
from zoho_broker.clock import Clock, SystemClock
from zoho_broker.config import Settings
from zoho_broker.data_centres import AccountsServers
from zoho_broker.logic.pacing import Unpaced, WindowCounter
from zoho_broker.store import aws
from zoho_broker.store.announcements import Announcer
from zoho_broker.store.flows import FlowStore
from zoho_broker.store.integrations import IntegrationCatalogue, IntegrationStore
from zoho_broker.store.refresh_queue import RefreshQueue
from zoho_broker.store.secrets import SecretStore
from zoho_broker.store.signing_key import SigningKeyStore
from zoho_broker.store.subscriptions import SubscriptionStore
from zoho_broker.store.write_budget import WriteBudgetStore

if TYPE_CHECKING:
    import httpx

    from zoho_broker.zoho_client import ZohoClient


@dataclass
class Services:
    settings: Settings
    # The refresher's time source: a simulation or a test may put a virtual clock here.
    clock: Clock = field(default_factory=SystemClock)

    @cached_property
    def catalogue(self) -> IntegrationCatalogue:
        """The built-in integrations, each replaced by the operator's stored copy when there is one."""
        return IntegrationCatalogue(load_catalogue(), IntegrationStore(self.settings.subscriptions_table))

    @cached_property
    def subscriptions(self) -> SubscriptionStore:
        return SubscriptionStore(self.settings.subscriptions_table)

    @cached_property
    def secrets(self) -> SecretStore:
        return SecretStore(self.settings.secret_prefix)

    @cached_property
    def write_budget(self) -> WindowCounter:
        table = self.settings.write_budget_table
        return WriteBudgetStore(table) if table else Unpaced()

    @cached_property
    def flows(self) -> FlowStore:
        return FlowStore(self.settings.flows_table)

    @cached_property
    def signing_keys(self) -> SigningKeyStore:
        return SigningKeyStore(self.settings.state_key_secret_id)

    @cached_property
    def accounts_servers(self) -> AccountsServers:
        return AccountsServers(self.settings.zoho_accounts_servers)

    @cached_property
    def announcer(self) -> Announcer:
        return Announcer(self.settings.event_bus_name)

    @cached_property
    def refresh_queue(self) -> RefreshQueue:
        return RefreshQueue(self.settings.refresh_queue_url)

    @cached_property
    def zoho(self) -> ZohoClient:
        # Imported here: only the functions that call Zoho pay for httpx at cold start.
        from zoho_broker.zoho_client import ZohoClient

        return ZohoClient(timeout_seconds=self.settings.zoho_timeout_seconds)

    @cached_property
    def zoho_api(self) -> httpx.Client:
        """The proxy's client for Zoho's APIs (connections kept across warm invocations)."""
        import httpx

        from zoho_broker.zoho_client import TransportPerScheme

        timeout = self.settings.zoho_timeout_seconds
        return httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(3.0, timeout)),
            follow_redirects=False,
            transport=TransportPerScheme(),
            headers={"User-Agent": "zoho-oauth-broker-proxy"},
        )

    def make(self, *parts: str) -> None:
        """Make these parts now rather than on first use (under SnapStart, init goes into the snapshot)."""
        for part in parts:
            getattr(self, part)


@cache
def get_services() -> Services:
    return Services(settings=Settings.from_env())


def reset_services() -> None:
    """Forget everything made from the environment (tests and the local runner change it)."""
    get_services.cache_clear()
    aws.reset()
