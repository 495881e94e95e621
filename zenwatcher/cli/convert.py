"""`zen-watcher convert`: the daemon's mapping and filters without a cluster; identical findings
fold into one Observation whatever time lies between them (no dedup window).

Reads payload files (JSON, JSON lines, or YAML for reports), prints one Observation per distinct
finding as a JSON line (count = how many times it was seen), and notes skipped or rejected
entries on stderr. Exit 2 only for a file it cannot read or parse.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson
import yaml

from zenwatcher.filters import explain, rules
from zenwatcher.finding import Finding
from zenwatcher.mapping.rejection import Ignored, Rejected, Skip
from zenwatcher.mapping.reports import dispatch, kinds
from zenwatcher.observation import observation_namespace, to_observation
from zenwatcher.sources import PUSH_SOURCE_NAMES, PushSource, push_source


class InputError(Exception):
    """A file that cannot be read or parsed; the message names it and the problem."""


@dataclass
class Collected:
    """Distinct findings in first-seen order, with their counts, and what was skipped."""

    findings: dict[str, Finding] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # One mapper per push source and run: the audit mapper judges each request once, so an
    # exec's ResponseStarted and ResponseComplete, in one file or two, are one.
    mappers: dict[str, Callable[[Any], Finding | Skip]] = field(default_factory=dict)
    explain: bool = False  # say which value dropped each filtered finding

    def mapper(self, source: PushSource) -> Callable[[Any], Finding | Skip]:
        """This run's mapper of `source`'s events."""
        if source.name not in self.mappers:
            self.mappers[source.name] = source.new_mapper()
        return self.mappers[source.name]

    def add(self, finding: Finding) -> None:
        self.findings.setdefault(finding.name, finding)
        self.counts[finding.name] = self.counts.get(finding.name, 0) + 1


def convert_files(
    *,
    source: str,
    paths: list[str],
    filter_path: str | None,
    namespace: str,
    ttl_seconds: int,
    explain_drops: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the conversion; the process exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        config = rules.load_filter_file(filter_path) if filter_path else None
        documents = [(path, load_documents(path, source=source)) for path in paths]
    except (InputError, rules.FilterConfigError) as error:
        print(f"zen-watcher convert: {error}", file=err)
        return 2
    collected = Collected(explain=explain_drops)
    for path, docs in documents:
        for document in docs:
            _collect(source, path, document, config, collected)
    now = datetime.now(UTC)
    for name, finding in collected.findings.items():
        body = to_observation(
            finding,
            namespace=observation_namespace(finding, default_namespace=namespace),
            now=now,
            ttl_seconds=ttl_seconds,
            count=collected.counts[name],
        )
        out.write(orjson.dumps(body).decode() + "\n")
    for note in collected.notes:
        print(f"zen-watcher convert: {note}", file=err)
    return 0


def load_documents(path: str, *, source: str) -> list[Any]:
    """Decoded documents of one file: a JSON value, JSON lines, or (reports) YAML documents."""
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        return [orjson.loads(raw)]
    except orjson.JSONDecodeError as error:
        first_error = error
    lines = [line for line in raw.splitlines() if line.strip()]
    if len(lines) > 1:
        try:
            return [orjson.loads(line) for line in lines]
        except orjson.JSONDecodeError:
            pass
    if source not in PUSH_SOURCE_NAMES:  # reports may be YAML
        try:
            return [doc for doc in yaml.safe_load_all(raw) if doc is not None]
        except yaml.YAMLError as error:
            raise InputError(f"{path}: not JSON or YAML: {_first_line(error)}") from None
        except RecursionError:  # PyYAML's composer recurses once per nesting level
            raise InputError(f"{path}: YAML nested too deeply to read") from None
    raise InputError(f"{path}: not JSON or JSON lines: {first_error}")


def _collect(
    source: str,
    path: str,
    document: Any,
    config: rules.FilterConfig | None,
    collected: Collected,
) -> None:
    if source in PUSH_SOURCE_NAMES:
        findings = _events(push_source(source), path, document, collected)
    else:
        findings = _reports(source, path, document, collected)
    for finding in findings:
        reason = rules.evaluate(config, finding) if config else None
        if reason is None:
            collected.add(finding)
        elif config and collected.explain:
            why = explain.why(config, finding, reason)
            collected.notes.append(f"{path}: {finding.name} filtered ({reason}): {why}")
        else:
            collected.notes.append(f"{path}: {finding.name} filtered ({reason})")


def _events(source: PushSource, path: str, document: Any, collected: Collected) -> list[Finding]:
    map_event = collected.mapper(source)
    try:
        events = source.split(document)
    except Rejected as rejected:
        collected.notes.append(f"{path}: rejected ({rejected.reason}): {rejected}")
        return []
    findings = []
    for index, event in enumerate(events):
        try:
            judged = map_event(event)
        except Ignored as ignored:
            judged = ignored.as_skip()
        except Rejected as rejected:
            collected.notes.append(
                f"{path}: event {index} rejected ({rejected.reason}): {rejected}"
            )
            continue
        if isinstance(judged, Skip):
            collected.notes.append(
                f"{path}: event {index} skipped ({judged.reason}): {judged.describe()}"
            )
        else:
            findings.append(judged)
    return findings


def _reports(source: str, path: str, document: Any, collected: Collected) -> list[Finding]:
    findings: list[Finding] = []
    for report in dispatch.split_documents(document):
        label = _describe(report)
        api_version = report.get("apiVersion", "") if isinstance(report, dict) else ""
        if kinds.report_source(str(api_version)) != source:
            collected.notes.append(f"{path}: {label} skipped: not a {source} report kind")
            continue
        try:
            mapped = dispatch.map_report(report)
        except (Ignored, Rejected) as error:
            collected.notes.append(f"{path}: {label} skipped ({error.reason}): {error}")
            continue
        findings.extend(mapped.findings)
        collected.notes.extend(_entry_notes(path, label, mapped.rejected))
    return findings


def _entry_notes(path: str, label: str, rejected: Iterable[Rejected]) -> list[str]:
    return [f"{path}: {label}: entry rejected ({item.reason}): {item}" for item in rejected]


def _describe(report: Any) -> str:
    if not isinstance(report, dict):
        return f"a {type(report).__name__}"
    metadata = report.get("metadata") if isinstance(report.get("metadata"), dict) else {}
    name = (metadata or {}).get("name") or "(unnamed)"
    return f"{report.get('kind', '(no kind)')} {name}"


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
