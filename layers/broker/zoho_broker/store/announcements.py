"""EventBridge events that announce a subscription's change of health (never a secret)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from zoho_broker.store import aws

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

SOURCE = "zoho-broker"
NEEDS_REAUTHENTICATION = "SubscriptionNeedsReauthentication"
RECOVERED = "SubscriptionRecovered"
# A connection replaced a live one (another consent, possibly another Zoho account or data centre).
RECONNECTED = "SubscriptionReconnected"


class Announcer:
    def __init__(self, bus_name: str, client: EventBridgeClient | None = None) -> None:
        self._bus = bus_name
        self._client = client or aws.events()

    def announce(self, detail_type: str, detail: dict[str, Any]) -> None:
        """``detail`` holds JSON values only (text, numbers, None): the event carries it as given."""
        answer = self._client.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": self._bus,
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused the {detail_type} event: {answer['Entries']}")
