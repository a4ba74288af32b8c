"""Markdown pieces every workload section shares."""

import re


def anchor(title):
    """The link target GitHub gives a heading: '#fan_out-n-requests-k-in-flight'."""
    return "#" + re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def answer(question, text, title):
    """One line of the report's Answers: the question in bold, the answer, a link to
    the section with the details."""
    return f"**{question}** {text} [→]({anchor(title)})"


def section(title, intro, plots, tables, errors, sentences):
    """A workload's report section: heading, intro, embedded PNG plots, tables,
    '### Errors' (lines without the leading '- ') and '### Conclusions'."""
    out = [f"## {title}", "", intro, ""]
    out += [f"![{p.rsplit('/', 1)[-1]}]({p})" for p in plots if p.endswith(".png")]
    out.append("")
    for table in tables:
        out += table + [""]
    if errors:
        out += ["### Errors", ""] + [f"- {e}" for e in errors] + [""]
    if sentences:
        out += ["### Conclusions", ""] + [f"- {s}" for s in sentences] + [""]
    return "\n".join(out)


HELD = {True: "✓ held", False: "✗ did not hold", None: "– not computed"}


def checks_table(intro, rows):
    """A section's checks as one table: rows of (check, limit, measured, held), held
    True, False or None (not computed). No rows, no table."""
    if not rows:
        return []
    return ([intro, "", "| check | limit | measured | held |", "|---|---|---|---|"]
            + [f"| {check} | {limit} | {measured} | {HELD[held]} |" for check, limit, measured, held in rows])
