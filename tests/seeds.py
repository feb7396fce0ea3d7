"""What the seed documents (../shared/seeds) give verbatim, shared by the tests that paste it."""

# The Zoho Commerce OAuth URL template of the seed "Zoho Commerce Internal Authentication Setup".
SEED_COMMERCE_TEMPLATE = (
    "https://accounts.zoho.com/oauth/v2/auth?scope=ZohoCRM.modules.ALL,ZohoCRM.settings.ALL,"
    "ZohoCommerce.inventoryadjustments.CREATE,ZohoCommerce.items.ALL,ZohoCommerce.salesorders.READ,"
    "ZohoCommerce.salesorders.CREATE,ZohoCommerce.salesorders.UPDATE,ZohoCommerce.settings.READ,"
    "ZohoCommerce.webhooks.READ,ZohoCommerce.webhooks.CREATE,ZohoCommerce.webhooks.ALL&client_id={Client_Id}"
    "&response_type=code&redirect_uri={SystemTypeVersion:RedirectUrl}&access_type=offline&state={iPaaSState}"
)
