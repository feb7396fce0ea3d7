"""Core of the Zoho OAuth broker: models, catalogue, state signing, stores and the Zoho client.

Handlers in functions/ stay thin and call into ``zoho_broker.logic``; only ``zoho_broker.store``
touches boto3.
"""
