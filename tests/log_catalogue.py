"""The log catalogue of docs/operations.md: every line the broker logs, its level and its fields; and
the events of docs/architecture.md, whose detail an announcement's log line carries.

Operators query and alarm on ``message`` and the fields, so a changed sentence or a lost field breaks
them as surely as a changed API. The catalogue is read from the document itself; `problem` judges one
logged record against it (tests/conftest.py runs it on every record of every test) and `logger_calls`
finds every call in the code, so the table and the code are held to each other both ways.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import re
from pathlib import Path

import zoho_broker
from zoho_broker.store import announcements

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "operations.md"
EVENTS_DOCUMENT = ROOT / "docs" / "architecture.md"
# Where the broker's code is: the layer's package (wherever it was imported from) and the handlers.
SOURCES = [Path(zoho_broker.__file__).parent, ROOT / "functions"]
# Every logger of the broker: Powertools names them after the service, children after their module.
SERVICE = "zoho-broker"
LEVELS = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "error": "ERROR", "exception": "ERROR"}
_ROW = re.compile(r"^\| `(?P<message>[^`]+)` \| (?P<level>[A-Z]+) \|(?P<fields>[^|]*)\|")
_EVENT = re.compile(r"^\| `(?P<detail_type>Subscription[A-Za-z]+)` \|[^|]*\|(?P<keys>[^|]*)\|")
_FIELD = re.compile(r"(\[?)`([a-z_]+)`")
# What a LogRecord carries before any ``extra``; logging adds "message" when it formats.
_STANDARD = {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime"}


@dataclasses.dataclass(frozen=True)
class Entry:
    level: str
    required: frozenset[str]
    optional: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Call:
    where: str
    message: str
    level: str
    fields: frozenset[str] | None  # None: built at run time (``**log``), judged when logged


def catalogue() -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    for line in DOCUMENT.read_text().splitlines():
        row = _ROW.match(line)
        if row is None:
            continue
        found = _FIELD.findall(row["fields"])
        entries[row["message"]] = Entry(
            level=row["level"],
            required=frozenset(name for bracket, name in found if not bracket),
            optional=frozenset(name for bracket, name in found if bracket),
        )
    return entries


def events() -> dict[str, frozenset[str]]:
    """Each event's detail keys, by detail type."""
    rows = (_EVENT.match(line) for line in EVENTS_DOCUMENT.read_text().splitlines())
    return {
        row["detail_type"]: frozenset(name for _, name in _FIELD.findall(row["keys"])) for row in rows if row
    }


CATALOGUE = catalogue()
EVENTS = events()


def problem(record: logging.LogRecord) -> str | None:
    """What is wrong with a record the broker logged, by the catalogue; None if nothing is."""
    if record.name != SERVICE and not record.name.startswith(SERVICE + "."):
        return None
    message = record.getMessage()
    where = f"{Path(record.pathname).name}:{record.lineno}"
    entry = CATALOGUE.get(message)
    if entry is None:
        return f"{where} logged {message!r}, which docs/operations.md's log catalogue does not list"
    if record.levelname != entry.level:
        return f"{where} logged {message!r} at {record.levelname}; the catalogue says {entry.level}"
    fields = set(vars(record)) - _STANDARD
    if not entry.required <= fields <= entry.required | entry.optional:
        expected = sorted(entry.required) + [f"[{name}]" for name in sorted(entry.optional)]
        return f"{where} logged {message!r} with fields {sorted(fields)}; the catalogue says {expected}"
    if message in EVENTS and set(record.announcement) != EVENTS[message]:
        keys = sorted(record.announcement)
        return f"{where} announced {message} with {keys}; docs/architecture.md says {sorted(EVENTS[message])}"
    return None


def logger_calls() -> list[Call]:
    """Every ``logger.<level>(...)`` in the broker's code; an announcement logs its event's detail type."""
    calls = []
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "logger"
                    and node.func.attr in LEVELS
                ):
                    continue
                where = f"{path.relative_to(source.parent)}:{node.lineno}"
                level = LEVELS[node.func.attr]
                fields = _fields(node)
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    calls.append(Call(where, first.value, level, fields))
                else:  # refresh.announce: the message is the detail type
                    for detail_type in announced():
                        calls.append(Call(where, detail_type, level, fields))
    return calls


def announced() -> list[str]:
    return [
        value
        for name, value in vars(announcements).items()
        if name.isupper() and name != "SOURCE" and isinstance(value, str)
    ]


def _fields(call: ast.Call) -> frozenset[str] | None:
    extra = next((keyword.value for keyword in call.keywords if keyword.arg == "extra"), None)
    if extra is None:
        return frozenset()
    if isinstance(extra, ast.Dict) and all(isinstance(key, ast.Constant) for key in extra.keys):
        return frozenset(str(key.value) for key in extra.keys if isinstance(key, ast.Constant))
    return None
