"""Domain errors, mapped to HTTP answers in one place per handler (never try/except per route)."""

from __future__ import annotations


class BrokerError(Exception):
    """Base of every error a user may see; ``message`` must never contain a secret."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def answer_status(self) -> int:
        """The HTTP status the broker answers this error with."""
        return self.status_code


class NotFound(BrokerError):
    status_code = 404
    code = "not_found"


class Conflict(BrokerError):
    status_code = 409
    code = "conflict"


class InvalidInput(BrokerError):
    status_code = 400
    code = "invalid_request"

    def __init__(self, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        # Where and what ({"field": "body.oauth_url_template", "message": ...}), as request validation says.
        self.details = details or []


class ConnectLinkInvalid(BrokerError):
    """The connect link is unknown, used or expired: the operator must issue a new one."""

    status_code = 410
    code = "connect_link_invalid"


class StateRejected(BrokerError):
    """The callback's state is forged, tampered, replayed, expired or from another browser."""

    status_code = 400
    code = "state_rejected"


class UntrustedAccountsServer(BrokerError):
    """The callback named an accounts server outside the allow-list: the code is never sent there."""

    status_code = 400
    code = "untrusted_accounts_server"


class ZohoError(BrokerError):
    """Zoho refused or failed a token call.

    ``transient`` errors (timeouts, 5xx, rate limiting) are worth retrying later; the others
    (``invalid_code``, ``invalid_client``, ...) are definitive.
    """

    status_code = 502
    code = "zoho_error"

    def __init__(self, message: str, *, zoho_code: str, transient: bool) -> None:
        super().__init__(message)
        self.zoho_code = zoho_code
        self.transient = transient

    @property
    def answer_status(self) -> int:
        # Zoho slow or failing is a passing condition: 503 (retry); a refusal stays as it is (502).
        return 503 if self.transient else self.status_code


class OrganizationMismatch(Conflict):
    """A consent connected another Zoho organization than the one the subscription is bound to: refused,
    the new refresh token revoked and the existing connection kept (docs/organizations.md)."""

    code = "organization_mismatch"


class OrganizationUnverified(ZohoError):
    """A bound subscription's new consent could not be verified (Zoho's API failed): refused like another
    organization's, since nothing shows it is the bound one; the same link works again in a minute."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"The broker could not confirm which Zoho organization this sign-in belongs to ({reason}); the "
            "existing connection keeps working.",
            zoho_code="organization_unverified",
            transient=True,
        )


class Busy(BrokerError):
    """Another refresh or connection holds the subscription's lease; retrying shortly will work."""

    status_code = 503
    code = "busy"


class LeaseLost(Busy):
    """The lease ran out (or was taken over) before the work was recorded: someone else now holds it.

    Distinct from a deleted subscription (NotFound); as an answer it means "busy, retry shortly".
    """

    code = "busy"


class NotConnected(BrokerError):
    """The subscription was never connected, or was disconnected: send a connect link."""

    status_code = 409
    code = "not_connected"


class NeedsReauthentication(NotConnected):
    """Zoho no longer accepts the subscription's refresh token: a person must connect it again."""

    code = "needs_reauthentication"


class UnsupportedMediaType(BrokerError):
    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLarge(BrokerError):
    status_code = 413
    code = "payload_too_large"


class ServiceUnavailable(BrokerError):
    """An AWS service the broker depends on failed or did not answer; nothing was changed, retry."""

    status_code = 503
    code = "service_unavailable"


class SecretUnreadable(BrokerError):
    """A subscription's secret no longer holds the broker's JSON (edited by hand, or corrupted).

    Its content is never logged or shown: it holds a client secret and tokens.
    """

    status_code = 409
    code = "secret_unreadable"


class RetryWithLink(BrokerError):
    """A consent failed for a passing reason after its connect link was used: the link works again."""

    status_code = 503
    code = "retry_with_link"

    def __init__(self, cause: Exception) -> None:
        reason = cause.message if isinstance(cause, BrokerError) else "The broker's storage did not answer."
        super().__init__(f"{reason} Nothing was connected.")
        self.cause = cause


class RetryWithNewGrantCode(BrokerError):
    """A Self Client grant code exchange failed for a passing reason: a grant code works once and lives
    minutes, so the owner generates a new one and the operator submits it again."""

    status_code = 503
    code = "service_unavailable"

    def __init__(self, cause: Exception) -> None:
        reason = cause.message if isinstance(cause, BrokerError) else "The broker's storage did not answer."
        super().__init__(
            f"{reason} Nothing was connected. Generate a new grant code in the Self Client and submit it again."
        )
