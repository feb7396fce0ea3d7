"""The small HTML pages a person sees after consenting at Zoho, and their security headers.

One mechanism for every page, the local console's included: a single inline stylesheet whose SHA-256
the Content-Security-Policy names, so no other style, script, image or font can load.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

BASE_CSS = (
    "*,*::before,*::after{box-sizing:border-box}"
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;line-height:1.5;"
    "background:#f5f6f8;color:#1d2330;-webkit-text-size-adjust:100%}"
    "main{max-width:32rem;margin:12vh auto;padding:2rem;background:#fff;border-radius:12px;"
    "border-top:6px solid #5b6272;box-shadow:0 1px 4px rgba(0,0,0,.12);overflow-wrap:anywhere}"
    "h1{font-size:1.4rem;line-height:1.3;margin:0 0 .75rem}p{margin:.5rem 0}"
    "main.ok{border-top-color:#13734b}.ok h1{color:#13734b}"
    "main.error{border-top-color:#a4262c}.error h1{color:#a4262c}"
    ".muted{color:#5b6272;font-size:.9rem}"
    "button{font:inherit;font-weight:600;color:#fff;background:#0b57d0;border:0;border-radius:8px;"
    "padding:.7rem 1.4rem;margin-top:1rem;cursor:pointer}button:hover{background:#0842a0}"
    "a{color:#0b57d0}a:focus-visible,button:focus-visible{outline:3px solid #0b57d0;outline-offset:2px}"
    "@media (max-width:36rem){main{margin:0;border-radius:0;min-height:100vh;padding:1.5rem 1.25rem}}"
)


def style_source(css: str) -> str:
    """The CSP source that allows exactly this inline stylesheet."""
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return f"'sha256-{digest}'"


# Ignored by browsers over plain http (the local runner), kept for a year over https.
HSTS = "max-age=31536000; includeSubDomains"


def security_headers(css: str = BASE_CSS, *, form_action: Iterable[str] = ("'none'",)) -> dict[str, str]:
    """Headers for a page carrying `css` inline; `form_action` lists where its forms may go."""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src {style_source(css)}; base-uri 'none'; "
            f"form-action {' '.join(form_action)}; frame-ancestors 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
        "Strict-Transport-Security": HSTS,
    }


SECURITY_HEADERS: dict[str, str] = security_headers()


def document(*, title: str, body_html: str, css: str = BASE_CSS) -> str:
    """A whole page around `body_html`, which the caller has built from escaped values."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{css}</style></head>"
        f"<body>{body_html}</body></html>"
    )


@dataclass(frozen=True)
class Page:
    status_code: int
    title: str
    html: str


def render(
    *, status_code: int, title: str, message: str, hint: str = "", ok: bool = False, notice: bool = False
) -> Page:
    """Every value is escaped: messages may quote what a browser sent.

    `ok` is a success, `notice` neither success nor failure (the person said no), else an error.
    """
    kind = "ok" if ok else "notice" if notice else "error"
    hint_html = f'<p class="muted">{escape(hint)}</p>' if hint else ""
    body = f'<main class="{kind}"><h1>{escape(title)}</h1><p>{escape(message)}</p>{hint_html}</main>'
    return Page(status_code=status_code, title=title, html=document(title=title, body_html=body))


def continue_to_zoho(integration_name: str, subscription_name: str, *, action: str) -> Page:
    """The connect link's landing page: a button, so link previews (chat, mail scanners) that fetch
    the URL do not use up the single-use link."""
    title = f"Connect {integration_name}"
    body = (
        f'<main class="notice"><h1>{escape(title)}</h1>'
        f"<p>You are about to connect <strong>{escape(subscription_name)}</strong> to your "
        f"{escape(integration_name)} account. Zoho will ask you to sign in and to allow access.</p>"
        f'<form method="post" action="{escape(action)}"><button type="submit">Continue to Zoho</button></form>'
        '<p class="muted">This link works once.</p></main>'
    )
    return Page(status_code=200, title=title, html=document(title=title, body_html=body))


def connected(integration_name: str, data_centre_label: str, organization_name: str | None = None) -> Page:
    return render(
        status_code=200,
        title=f"Connected to {integration_name} ({data_centre_label})"
        + (f": {organization_name}" if organization_name else ""),
        message="You may close this page.",
        ok=True,
    )


def access_denied(integration_name: str) -> Page:
    return render(
        status_code=200,
        title="Access was not granted",
        message=f"You chose not to give access to your {integration_name} account, so nothing was connected.",
        hint="To connect later, ask for a new connect link.",
        notice=True,
    )


def failure(error_title: str, message: str, *, status_code: int, hint: str = "") -> Page:
    return render(status_code=status_code, title=error_title, message=message, hint=hint)
