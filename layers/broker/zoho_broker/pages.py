"""The small HTML pages a person sees after consenting at Zoho, and their security headers."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from html import escape

_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;"
    "background:#f5f6f8;color:#1d2330}"
    "main{max-width:32rem;margin:12vh auto;padding:2rem;background:#fff;border-radius:12px;"
    "box-shadow:0 1px 4px rgba(0,0,0,.12)}"
    "h1{font-size:1.4rem;margin:0 0 .75rem}p{line-height:1.5;margin:.5rem 0}"
    ".ok h1{color:#13734b}.error h1{color:#a4262c}.muted{color:#5b6272;font-size:.9rem}"
    "@media (max-width:36rem){main{margin:0;border-radius:0;min-height:100vh;box-sizing:border-box}}"
)
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Page:
    status_code: int
    title: str
    html: str


def render(*, status_code: int, title: str, message: str, hint: str = "", ok: bool = False) -> Page:
    """Every value is escaped: messages may quote what a browser sent."""
    kind = "ok" if ok else "error"
    hint_html = f'<p class="muted">{escape(hint)}</p>' if hint else ""
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f'<body><main class="{kind}" role="main"><h1>{escape(title)}</h1>'
        f"<p>{escape(message)}</p>{hint_html}</main></body></html>"
    )
    return Page(status_code=status_code, title=title, html=html)


def connected(integration_name: str, data_centre_label: str) -> Page:
    return render(
        status_code=200,
        title=f"Connected to {integration_name} ({data_centre_label})",
        message="You may close this page.",
        ok=True,
    )


def access_denied(integration_name: str) -> Page:
    return render(
        status_code=200,
        title="Access was not granted",
        message=f"You chose not to give access to your {integration_name} account, so nothing was connected.",
        hint="To connect later, ask for a new connect link.",
    )


def failure(error_title: str, message: str, *, status_code: int, hint: str = "") -> Page:
    return render(status_code=status_code, title=error_title, message=message, hint=hint)
