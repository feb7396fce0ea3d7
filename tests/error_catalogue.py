"""The error catalogue of docs/errors.md: every error the broker answers with, its status, its code and
its sentence.

Sync jobs branch on the status and the code, and people read the sentence on a page, in the console or
in a subscription's ``last_error``: a changed sentence or a status flipped between "retry" (503) and
"refused" (502) breaks them as surely as a changed API. The catalogue is read from the document itself;
`problem` judges one error the broker made (tests/conftest.py runs it on every error made in every
test) and `constructions` finds every error the code makes, so the table and the code are held to each
other both ways.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import pkgutil
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zoho_broker
from zoho_broker.errors import BrokerError, ZohoError

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "errors.md"
SOURCES = [Path(zoho_broker.__file__).parent, ROOT / "functions"]
# Where a value is filled in: in the document, and in a template read from an f-string.
HOLE = "{…}"
_ROW = re.compile(
    r"^\| (?P<status>[0-9]{3}) \| `(?P<code>[a-z_]+)` \| (`(?P<zoho_code>[^`]+)`)? *\| `(?P<sentence>[^`]+)` \|"
)


@dataclasses.dataclass(frozen=True)
class Entry:
    status: int
    code: str
    zoho_code: str | None  # zoho_error only: what Zoho said, or the broker's word for what happened
    sentence: str  # with HOLE where a value is filled in

    def matches(self, status: int, code: str, zoho_code: str | None, message: str) -> bool:
        return (
            (self.status, self.code) == (status, code)
            and _pattern(self.zoho_code or "").fullmatch(zoho_code or "") is not None
            and _pattern(self.sentence).fullmatch(message) is not None
        )


@dataclasses.dataclass(frozen=True)
class Construction:
    """An error made in the code: its class and, when the code spells it, its sentence and Zoho code."""

    where: str
    error: type[BrokerError]
    sentence: str | None  # None: the message is passed on from elsewhere, judged when made
    zoho_code: str | None
    transient: bool | None

    @property
    def status(self) -> int:
        """ZohoError.answer_status, read from the code: a transient Zoho error answers 503."""
        transient = self.transient and issubclass(self.error, ZohoError)
        return 503 if transient else self.error.status_code


def catalogue() -> list[Entry]:
    rows = (_ROW.match(line) for line in DOCUMENT.read_text().splitlines())
    return [
        Entry(int(row["status"]), row["code"], row["zoho_code"], row["sentence"].replace("\\`", "`"))
        for row in rows
        if row
    ]


CATALOGUE = catalogue()


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(part) for part in template.split(HOLE)), re.DOTALL)


def problem(error: BrokerError) -> str | None:
    """What is wrong with an error the broker made, by the catalogue; None if nothing is."""
    status, zoho_code = error.answer_status, getattr(error, "zoho_code", None)
    if any(entry.matches(status, error.code, zoho_code, error.message) for entry in CATALOGUE):
        return None
    said = f"{status} {error.code}" + (f" ({zoho_code})" if zoho_code else "")
    return f"{type(error).__name__} {said} {error.message!r} is not in docs/errors.md"


@contextmanager
def errors_made() -> Iterator[list[BrokerError]]:
    """The errors the broker's code makes inside the block (not those a test makes to play a part)."""
    made: list[BrokerError] = []
    original = BrokerError.__init__

    def recording(self: BrokerError, message: str) -> None:
        original(self, message)
        frame = sys._getframe(1)
        while (
            frame.f_back is not None
            and frame.f_code.co_name == "__init__"
            and frame.f_locals.get("self") is self
        ):
            frame = frame.f_back  # a subclass's own __init__: the error is made where it was called
        if any(Path(frame.f_code.co_filename).is_relative_to(source) for source in SOURCES):
            made.append(self)

    BrokerError.__init__ = recording  # type: ignore[method-assign]
    try:
        yield made
    finally:
        BrokerError.__init__ = original  # type: ignore[method-assign]


def error_classes() -> dict[str, type[BrokerError]]:
    """Every BrokerError subclass of the broker's package, by name (modules imported to find them)."""
    for module in pkgutil.walk_packages(zoho_broker.__path__, "zoho_broker."):
        importlib.import_module(module.name)
    found: dict[str, type[BrokerError]] = {}
    pending: list[type[BrokerError]] = [BrokerError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


def constructions() -> list[Construction]:
    """Every error the broker's code makes. A class that builds its own sentence (``RetryWithLink(cause)``)
    is found at its ``super().__init__(...)``; a call that passes a message on is judged at run time."""
    classes = error_classes()
    builds_own = {name for name, cls in classes.items() if "message" not in _init_parameters(cls)}
    found = []
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node, name in _calls(tree, classes, builds_own):
                where = f"{path.relative_to(source.parent)}:{node.lineno}"
                message = node.args[0] if node.args else _keyword(node, "message")
                zoho_code = _keyword(node, "zoho_code")
                transient = _keyword(node, "transient")
                found.append(
                    Construction(
                        where,
                        classes[name],
                        _template(message) if message is not None else None,
                        (_template(zoho_code) or HOLE) if zoho_code is not None else None,
                        transient.value if isinstance(transient, ast.Constant) else None,
                    )
                )
    return found


def _calls(
    tree: ast.Module, classes: dict[str, type[BrokerError]], builds_own: set[str]
) -> list[tuple[ast.Call, str]]:
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name in builds_own:
            calls.extend(
                (call, node.name)
                for call in ast.walk(node)
                if isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "__init__"
                and isinstance(call.func.value, ast.Call)
                and isinstance(call.func.value.func, ast.Name)
                and call.func.value.func.id == "super"
            )
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name in classes and name not in builds_own:
                calls.append((node, name))
    return calls


def _init_parameters(cls: type[BrokerError]) -> list[str]:
    return list(cls.__init__.__code__.co_varnames[1 : cls.__init__.__code__.co_argcount])


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((keyword.value for keyword in call.keywords if keyword.arg == name), None)


def _template(node: ast.expr) -> str | None:
    """A sentence as the code spells it, with HOLE for each value filled in; None if it is passed on."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value if isinstance(part, ast.Constant) and isinstance(part.value, str) else HOLE
            for part in node.values
        )
    return None
