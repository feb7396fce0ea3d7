"""Use cases: no AWS types here, only stores, models and the Zoho client."""
