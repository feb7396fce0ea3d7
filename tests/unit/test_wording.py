"""Codes a person would otherwise read raw (on the callback's error page, on the console) in words."""

from __future__ import annotations

import pytest

from zoho_broker.wording import problem_in_words


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("invalid_code", "Zoho no longer accepts the sign-in"),
        ("invalid_client", "Zoho does not recognise the app's client id and secret"),
        ("invalid_client_secret", "Zoho does not accept the app's client secret"),
        ("invalid_redirect_uri", "The redirect URL is not the one registered"),
        ("timeout", "Zoho did not answer in time."),
        ("rate_limited", "Zoho asked the broker to slow down"),
        ("http_429", "Zoho asked the broker to slow down"),
        ("http_503", "Zoho had a problem on its side (HTTP 503)."),
        ("http_404", "Zoho answered HTTP 404."),
    ],
)
def test_a_known_code_is_said_in_words(code: str, words: str) -> None:
    said = problem_in_words(code)

    assert said.startswith(words)
    assert code not in said


def test_an_unknown_code_is_still_named() -> None:
    assert problem_in_words("something_new") == "Zoho refused (something_new)."
