"""The rehearsal's report as one self-contained HTML page (no script, no external resource), drawn
from report.json: the GO / NO-GO verdict, the targets, and plots of what the simulated audience
saw; and `write_report`, which writes both files atomically.

Rehearsal plane. Any figure may be null and any series empty (a run that could not start still
has a report): the page then says "no data". Long runs are binned so the page stays small.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

from rostra.rehearse.report_data import (
    NO_DATA,
    Rows,
    as_dict,
    as_list,
    at_text,
    figure_text,
    num,
    percent_text,
    seconds_text,
)
from rostra.rehearse.report_plots import (
    count_section,
    distributions_section,
    health_section,
    joins_section,
    no_data,
    section,
    speakers_section,
    stalls_section,
    table,
)

SECONDS_PER_MINUTE = 60
GENERATOR_NOTE = (
    "A simulated user that the load generator woke late is the generator's fault, never the "
    "server's: it is counted here and kept out of the verdict. If the behind ratio is more than "
    "a few percent, give the rehearsal more processes or machines and run it again."
)

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1060px;margin:1.5em auto;padding:0 1em;
color:#1a1a1a;line-height:1.4}h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:2em;
border-bottom:1px solid #ccc;padding-bottom:.2em}h3{font-size:1em}
.verdict{border:3px solid;padding:.6em 1.2em;margin:1em 0}.verdict .word{font-size:2.6em;
font-weight:800;margin:0;letter-spacing:.04em}.go{border-color:#1b7a33;background:#eef8f0}
.nogo{border-color:#b3261e;background:#fdeeed}.verdict h2{border:0;margin:0}
.unknown{border-color:#666;background:#f3f3f3}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1b7a33;font-weight:700}.fail{color:#b3261e;font-weight:700}.muted{color:#555}
.nodata{color:#555;font-style:italic}svg.plot{display:block;margin:.6em 0;max-width:100%}
pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:.9em}.note{border-left:4px solid #888;
padding:.3em .8em;background:#f6f6f6}
"""


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one HTML page."""
    rows = Rows.from_report(report)
    sections = [
        _header(report, rows),
        _verdict(report, rows),
        _targets(report),
        count_section(report, rows),
        distributions_section(report, rows),
        joins_section(report, rows),
        stalls_section(report, rows),
        speakers_section(report, rows),
        health_section(rows),
        _attacks(report),
        _generator(report),
        _scenario(report),
    ]
    title = escape(f"Rehearsal report: {_title(report)}")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )


def write_report(directory: Path, report: dict[str, Any]) -> None:
    """`report.json` (indent 1) and `report.html` in `directory`, each written to a temporary
    file and renamed over the old one, so a reader never sees half a report."""
    directory.mkdir(parents=True, exist_ok=True)
    page = render_html(report)
    for name, text in (("report.json", json.dumps(report, indent=1) + "\n"), ("report.html", page)):
        temporary = directory / f".{name}.tmp"
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, directory / name)


def _title(report: dict[str, Any]) -> str:
    scenario = as_dict(report.get("scenario"))
    for value in (
        scenario.get("title"),
        scenario.get("name"),
        as_dict(report.get("target_urls")).get("space_id"),
    ):
        if isinstance(value, str) and value:
            return value
    return "untitled scenario"


# ---- sections, top to bottom ----


def _header(report: dict[str, Any], rows: Rows) -> str:
    urls = as_dict(report.get("target_urls"))
    facts = [
        ("started", report.get("started_at")),
        ("ended", report.get("ended_at")),
        ("duration", _duration(report.get("duration_s"))),
        ("media (edge)", urls.get("media")),
        ("gate", urls.get("gate")),
        ("space", urls.get("space_id")),
    ]
    items = "".join(
        f"<li>{escape(name)}: {escape(str(value)) if value not in (None, '') else NO_DATA}</li>"
        for name, value in facts
    )
    return (
        f"<header><h1>Rehearsal report: {escape(_title(report))}</h1>"
        f"<ul class='muted'>{items}</ul></header>"
    )


def _verdict(report: dict[str, Any], rows: Rows) -> str:
    verdict = report.get("verdict")
    failures = [as_dict(f) for f in as_list(report.get("failures"))]
    targets = as_list(report.get("targets"))
    if verdict == "GO":
        css, word = "go", "GO"
    elif verdict == "NO-GO":
        css, word = "nogo", "NO-GO"
    else:
        css, word = "unknown", "NO VERDICT"
    if failures:
        items = "".join(_failure(report, f) for f in failures)
        detail = f"<p>Failed targets:</p><ul>{items}</ul>"
    elif verdict == "GO":
        detail = f"<p>✔ All {len(targets)} targets met.</p>"
    else:
        detail = "<p>No failed target was recorded.</p>"
    return (
        f"<section id='verdict' class='verdict {css}' aria-label='verdict'>"
        f"<h2 class='word'>{word}</h2>{detail}</section>"
    )


def _duration(value: object) -> str:
    """`7,200 s (2:00:00)`: the seconds, and hours, minutes and seconds past a minute."""
    seconds = num(value)
    if seconds is None or seconds < SECONDS_PER_MINUTE:
        return seconds_text(value)
    whole = round(seconds)
    clock = f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
    return f"{seconds_text(seconds)} ({clock})"


def _failure(report: dict[str, Any], failure: dict[str, Any]) -> str:
    """One failed target: its sentence, its figure against its limit, and when it failed."""
    text = str(failure.get("text") or failure.get("target") or "a target")
    figures = ""
    if num(failure.get("figure")) is not None or num(failure.get("limit")) is not None:
        figures = (
            f" — figure {figure_text(failure.get('figure'))}, "
            f"limit {figure_text(failure.get('limit'))}"
        )
    when = at_text(report, failure.get("at_t"))
    return f"<li>✘ {escape(text + figures + (' ' + when if when else ''))}</li>"


def _targets(report: dict[str, Any]) -> str:
    targets = [as_dict(t) for t in as_list(report.get("targets"))]
    if not targets:
        return section("targets", "Targets", no_data("Targets"))
    rows = [
        [
            escape(str(t.get("target", ""))),
            escape(str(t.get("text", ""))),
            escape(figure_text(t.get("figure"))),
            escape(figure_text(t.get("limit"))),
            "<span class='pass'>✔ pass</span>"
            if t.get("ok") is True
            else "<span class='fail'>✘ FAIL</span>",
        ]
        for t in targets
    ]
    return section(
        "targets", "Targets", table(["target", "what", "figure", "limit", "result"], rows, {2, 3})
    )


def _attacks(report: dict[str, Any]) -> str:
    attacks = as_dict(as_dict(report.get("summary")).get("attacks"))
    rows = []
    for key, count in sorted(attacks.items()):
        kind, _, answer = str(key).partition(":")
        is_bug = answer.isdigit() and int(answer) >= 500 and answer != "503"
        rows.append(
            [
                escape(kind),
                escape(answer or NO_DATA)
                + (" <span class='fail'>✘ server error</span>" if is_bug else ""),
                escape(figure_text(count)),
            ]
        )
    if not rows:
        return section("attacks", "The attacks' answers", no_data("Attack traffic"))
    return section(
        "attacks",
        "The attacks' answers",
        "<p>What the server answered to each kind of attack traffic.</p>",
        table(["attack", "answer", "requests"], rows, {2}),
    )


def _generator(report: dict[str, Any]) -> str:
    summary = as_dict(report.get("summary"))
    generator = as_dict(report.get("generator"))
    facts = [
        ["load-generating processes", figure_text(generator.get("processes"))],
        ["user steps", figure_text(generator.get("steps"))],
        ["steps woken late (behind)", figure_text(generator.get("behind"))],
        ["behind ratio", percent_text(summary.get("generator_behind_ratio"))],
        ["generator CPU", seconds_text(generator.get("cpu_s"))],
    ]
    errors = as_dict(summary.get("generator_errors"))
    facts += [
        [f"error in a simulated user: {k}", figure_text(v)] for k, v in sorted(errors.items())
    ]
    if not errors:
        facts.append(["errors in simulated users", "none"])
    units = as_dict(report.get("unit_costs"))
    parts = [
        f"<p class='note'>{escape(GENERATOR_NOTE)}</p>",
        table(["figure", "value"], [[escape(a), escape(b)] for a, b in facts], {1}),
        "<h3>Unit costs measured (read by <code>rostra plan --from</code>)</h3>",
        table(
            ["unit cost", "value"],
            [[escape(str(k)), escape(figure_text(v))] for k, v in sorted(units.items())],
            {1},
        )
        if units
        else no_data("Unit costs"),
    ]
    return section("generator", "The load generator's health", *parts)


def _scenario(report: dict[str, Any]) -> str:
    scenario = as_dict(report.get("scenario"))
    if not scenario:
        return section("scenario", "The scenario", no_data("Scenario"))
    listing = "\n".join(_toml_lines(scenario, "")).strip()
    return section(
        "scenario",
        "The scenario",
        "<p>As run, after the command line's overrides.</p>",
        f"<pre>{escape(listing)}</pre>",
    )


def _toml_lines(table: dict[str, Any], prefix: str) -> list[str]:
    """A TOML-like listing: a table's plain keys, then its sub-tables and arrays of tables."""
    lines: list[str] = []
    nested: list[tuple[str, Any]] = []
    for key, value in table.items():
        is_tables = isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        if isinstance(value, dict) or is_tables:
            nested.append((prefix + _toml_key(key), value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for name, value in nested:
        if isinstance(value, dict):
            lines += ["", f"[{name}]", *_toml_lines(value, name + ".")]
        else:
            for item in value:
                lines += ["", f"[[{name}]]", *_toml_lines(item, name + ".")]
    return lines


def _toml_key(key: object) -> str:
    text = str(key)
    bare = text and all(c.isascii() and (c.isalnum() or c in "-_") for c in text)
    return text if bare else json.dumps(text, ensure_ascii=False)


def _toml_value(value: object) -> str:
    if value is None:
        return "null  # unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)
