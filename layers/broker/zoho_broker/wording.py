"""Zoho's and the broker's short error codes in plain words, for pages and the console.

Codes stay in logs, metrics and the admin API (tools match on them); people read these sentences.
"""

from __future__ import annotations

_WORDS = {
    "invalid_code": "Zoho no longer accepts the sign-in: the code expired or was used, or the person "
    "removed the app's access in their Zoho account.",
    "invalid_client": "Zoho does not recognise the app's client id and secret: check them in the Zoho "
    "API Console.",
    "invalid_client_secret": "Zoho does not accept the app's client secret: check it in the Zoho API Console.",
    "invalid_redirect_uri": "The redirect URL is not the one registered for the app in the Zoho API Console.",
    "access_denied": "Zoho denied access.",
    "unsupported_grant_type": "Zoho did not understand the broker's request.",
    "invalid_request": "Zoho did not understand the broker's request.",
    "no_refresh_token": "Zoho gave no refresh token, so the connection could not be kept.",
    "timeout": "Zoho did not answer in time.",
    "unreachable": "Zoho could not be reached.",
    "rate_limited": "Zoho asked the broker to slow down (too many requests).",
    "bad_response": "Zoho answered something the broker could not read.",
    "revoke_pending": "Revoking the old token at Zoho is still under way.",
    "not connected": "The subscription is not connected.",
    "needs re-authentication": "A person must connect the subscription again.",
}


def problem_in_words(code: str) -> str:
    """A sentence for a code; an unknown code is still named, after words that say who answered."""
    if code in _WORDS:
        return _WORDS[code]
    if code.startswith("http_") and code[5:].isdigit():
        status = int(code[5:])
        if status == 429:
            return _WORDS["rate_limited"]
        return (
            f"Zoho had a problem on its side (HTTP {status})."
            if status >= 500
            else f"Zoho answered HTTP {status}."
        )
    return f"Zoho refused ({code})."
