"""Yardstick: a minimal handler (start or callback, as YARDSTICK_JOB says) plus what the fixed design
requires of it: pydantic at every boundary (imported, one model validated before the minimal handler runs)
and, for the callback, httpx as the Zoho client (imported; the token exchange stays on urllib, so this is
the cheaper side). Nothing of the broker's own. Its ratio to the minimal handler is the floor any function
built on the fixed design starts from, on this machine."""

import importlib.util
import os
from pathlib import Path

from pydantic import BaseModel, Field

JOB = os.environ["YARDSTICK_JOB"]
_spec = importlib.util.spec_from_file_location(f"minimal_{JOB}", Path(__file__).parents[1] / JOB / "app.py")
minimal = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(minimal)
if JOB == "callback":
    import httpx  # noqa: F401


class Parameters(BaseModel):
    """What the function's route validates first: the link (start) or the state (callback)."""

    value: str = Field(min_length=1, max_length=1024)


def handler(event, context):
    found = event.get("pathParameters") or event.get("queryStringParameters") or {}
    Parameters(value=found.get("link") or found.get("state") or "-")
    return minimal.handler(event, context)
