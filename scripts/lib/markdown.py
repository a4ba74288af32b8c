"""Markdown pieces every workload section shares."""


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
