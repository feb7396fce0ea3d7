"""`broker`: the admin command-line tool for the Zoho OAuth broker (a deployed stack or the local runner)."""

__version__ = "0.1.0"
