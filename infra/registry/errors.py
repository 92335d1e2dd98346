"""Registry errors, carrying Confluent's HTTP status and ``error_code``."""

from __future__ import annotations


class RegistryError(Exception):
    """Base error: rendered as ``{"error_code": code, "message": message}``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def subject_not_found(subject: str) -> RegistryError:
    """40401: the subject has no (live) versions."""
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(subject: str, version: object) -> RegistryError:
    """40402: the subject exists but not that version."""
    return RegistryError(404, 40402, f"Version {version} not found for subject '{subject}'.")


def schema_not_found(detail: str = "Schema not found") -> RegistryError:
    """40403: no schema with that id, or not under that subject."""
    return RegistryError(404, 40403, detail)


def subject_not_soft_deleted(subject: str) -> RegistryError:
    """40405: a permanent delete needs a soft delete first."""
    return RegistryError(
        404, 40405, f"Subject '{subject}' was not deleted first before being permanently deleted"
    )


def version_not_soft_deleted(subject: str, version: int) -> RegistryError:
    """40407: a permanent delete of a version needs a soft delete first."""
    return RegistryError(
        404,
        40407,
        f"Subject '{subject}' Version {version} was not deleted first before being permanently "
        "deleted",
    )


def subject_config_not_found(subject: str) -> RegistryError:
    """40408: no subject-level compatibility configured."""
    return RegistryError(
        404, 40408, f"Subject '{subject}' does not have subject-level compatibility configured"
    )


def incompatible(messages: list[str]) -> RegistryError:
    """409: the schema breaks the subject's compatibility level."""
    detail = "; ".join(messages) if messages else "incompatible"
    return RegistryError(
        409, 409, f"Schema being registered is incompatible with an earlier schema: {detail}"
    )


def invalid_schema(detail: str) -> RegistryError:
    """42201: the schema does not parse (or uses an unsupported feature)."""
    return RegistryError(422, 42201, f"Invalid schema: {detail}")


def invalid_version(version: str) -> RegistryError:
    """42202: the version is neither a positive integer nor ``latest``."""
    return RegistryError(
        422,
        42202,
        f"The specified version '{version}' is not a valid version id. Allowed values are "
        'between [1, 2^31-1] and the string "latest"',
    )


def invalid_compatibility(level: object) -> RegistryError:
    """42203: unknown compatibility level."""
    return RegistryError(422, 42203, f"Invalid compatibility level: {level}")


def bad_request(detail: str) -> RegistryError:
    """400: unreadable request body."""
    return RegistryError(400, 400, detail)
