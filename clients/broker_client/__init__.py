"""The client for sync jobs: Zoho's API through the broker's proxy, SigV4-signed, within the
subscription's throttling; a paging helper; and a cached access token for jobs that call Zoho directly.

    from broker_client import ProxyClient

    with ProxyClient("https://abc123.execute-api.eu-west-1.amazonaws.com", "sub_3f2a...") as zoho:
        for lead in zoho.pages("Leads", params={"fields": "Last_Name,Email"}):
            ...
        zoho.post("Leads", json={"data": [{"Last_Name": "Ng"}]})
"""

from broker_client.client import BrokerCallError, ProxyClient

__all__ = ["BrokerCallError", "ProxyClient"]
