"""Integrations and their versions, managed at runtime as the seeds' integrators do.

Validation is the models' (catalogue.py): a bad template is refused with every problem named and
nothing stored. Writes go through the store's revision check, so concurrent edits never lose one.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from zoho_broker.catalogue import IntegrationVersion, IntegrationVersionFields, StoredIntegration
from zoho_broker.errors import Conflict, InvalidInput, NotFound
from zoho_broker.models import (
    IntegrationCreate,
    IntegrationList,
    IntegrationVersionUpdate,
    IntegrationView,
    utc_now,
)
from zoho_broker.services import Services

logger = Logger(child=True)


def _view(services: Services, integration: StoredIntegration) -> IntegrationView:
    return IntegrationView(
        id=integration.id,
        name=integration.name,
        description=integration.description,
        versions=integration.versions,
        built_in=services.catalogue.find_built_in(integration.id) is not None,
        customised=integration.revision > 0,
        revision=integration.revision,
    )


def list_all(services: Services) -> IntegrationList:
    return IntegrationList(integrations=[_view(services, i) for i in services.catalogue.list()])


def get(services: Services, integration_id: str) -> IntegrationView:
    return _view(services, services.catalogue.current(integration_id))


def create(services: Services, body: IntegrationCreate, *, changed_by: str) -> IntegrationView:
    if services.catalogue.find_built_in(body.id) is not None:
        raise Conflict(f"The integration {body.id!r} already exists (built in): add a version to it instead.")
    integration = StoredIntegration(
        id=body.id,
        name=body.name,
        description=body.description,
        versions=[_stamped(body.version, changed_by)],
    )
    try:
        stored = services.catalogue.store.put(integration, read_revision=0)
    except Conflict as error:
        raise Conflict(f"The integration {body.id!r} already exists: add a version to it instead.") from error
    logger.info("integration created", extra={"integration": body.id, "changed_by": changed_by})
    return _view(services, stored)


def add_version(
    services: Services, integration_id: str, body: IntegrationVersionFields, *, changed_by: str
) -> IntegrationVersion:
    current = services.catalogue.current(integration_id)
    if current.find_version(body.version) is not None:
        raise Conflict(f"The integration {integration_id!r} already has a version {body.version!r}.")
    version = _stamped(body, changed_by)
    updated = current.model_copy(update={"versions": [*current.versions, version]})
    services.catalogue.store.put(updated, read_revision=current.revision)
    logger.info(
        "integration version added",
        extra={"integration": integration_id, "version": body.version, "changed_by": changed_by},
    )
    return version


def get_version(services: Services, integration_id: str, version: str) -> IntegrationVersion:
    return _require_version(services.catalogue.current(integration_id), version)


def update_version(
    services: Services,
    integration_id: str,
    version: str,
    body: IntegrationVersionUpdate,
    *,
    changed_by: str,
) -> IntegrationVersion:
    """Change the given fields; the next consent uses them, one under way finishes as it started."""
    current = services.catalogue.current(integration_id)
    existing = _require_version(current, version)
    merged: dict[str, Any] = existing.model_dump(exclude={"changed_by", "changed_at"})
    merged.update(body.model_dump(exclude_unset=True))
    try:
        fields = IntegrationVersionFields.model_validate(merged)
    except ValidationError as error:
        raise _invalid(error) from error
    changed = _stamped(fields, changed_by)
    versions = [changed if v.version == version else v for v in current.versions]
    services.catalogue.store.put(
        current.model_copy(update={"versions": versions}), read_revision=current.revision
    )
    logger.info(
        "integration version changed",
        extra={"integration": integration_id, "version": version, "changed_by": changed_by},
    )
    return changed


def delete_version(services: Services, integration_id: str, version: str, *, changed_by: str) -> None:
    """Delete a version no subscription uses.

    The version is first marked as retiring (a write, so every subscription write that read the
    integration before fails its revision check, and every later one sees the mark); only then are its
    subscriptions counted. None can start using it between the count and the deletion.
    """
    current = services.catalogue.current(integration_id)
    _require_version(current, version)
    if len(current.versions) == 1:
        raise Conflict(f"{version!r} is the only version of {integration_id!r}: an integration keeps one.")
    retiring = current.model_copy(update={"retiring": sorted({*current.retiring, version})})
    retiring = services.catalogue.store.put(retiring, read_revision=current.revision)
    users = services.subscriptions.count_using(integration_id, version)
    remaining = [v for v in retiring.versions if v.version != version]
    if users:
        services.catalogue.store.put(
            retiring.model_copy(update={"retiring": [v for v in retiring.retiring if v != version]}),
            read_revision=retiring.revision,
        )
        used_by = "1 subscription uses" if users == 1 else f"{users} subscriptions use"
        raise Conflict(
            f"{used_by} version {version!r} of {integration_id!r}: move them to another version first."
        )
    services.catalogue.store.put(
        retiring.model_copy(
            update={"versions": remaining, "retiring": [v for v in retiring.retiring if v != version]}
        ),
        read_revision=retiring.revision,
    )
    logger.info(
        "integration version deleted",
        extra={"integration": integration_id, "version": version, "changed_by": changed_by},
    )


def _require_version(integration: StoredIntegration, version: str) -> IntegrationVersion:
    found = integration.find_version(version)
    if found is None:
        known = ", ".join(v.version for v in integration.versions)
        raise NotFound(f"The integration {integration.id!r} has no version {version!r} (known: {known}).")
    return found


def _stamped(fields: IntegrationVersionFields, changed_by: str) -> IntegrationVersion:
    return IntegrationVersion.model_validate(
        {**fields.model_dump(), "changed_by": changed_by, "changed_at": utc_now()}
    )


def _invalid(error: ValidationError) -> InvalidInput:
    """The problems, named as request validation names them (body.<field>), never the value sent."""
    details = []
    for problem in error.errors(include_input=False):
        location = ".".join(str(part)[:64] for part in ("body", *problem["loc"]))
        details.append({"field": location, "message": problem["msg"]})
    fields = ", ".join(d["field"] for d in details)
    return InvalidInput(f"The version is invalid: check {fields}.", details)
