from zoho_broker.masking import mask


def test_mask_shows_at_most_four_characters_and_the_length() -> None:
    token = "1000.abcdef0123456789abcdef0123456789.0123456789abcdef0123456789abcdef"

    assert mask(token) == f"1000…({len(token)} chars)"
    assert mask("short") == "…(5 chars)"
    assert mask(None) is None
