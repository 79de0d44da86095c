"""Zenodo deposition metadata: a rendering of the archive's citation.

:func:`deposition_metadata` is the :class:`~sarcube.datacube.archive.citation.Citation`
as Zenodo's deposit API spells it (``metadata.json`` in the archive folder, and
what a deposition is given); Zenodo wants the markdown description as HTML
(:func:`markdown_to_html`).
"""

from __future__ import annotations

import html
import re
from typing import Any

from sarcube.datacube.archive.citation import Citation, Creator

UPLOAD_TYPE = "dataset"
ACCESS_RIGHT = "open"


def markdown_to_html(text: str) -> str:
    """Zenodo wants HTML descriptions: headings, lists, code blocks, paragraphs, inline code/bold/links."""
    def inline(line: str) -> str:
        line = html.escape(line, quote=False)
        line = re.sub(r"`([^`]+)`", r"<code>\1</code>", line)
        line = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", line)
        return re.sub(r"\[([^\]]+)\]\((https?://[^)\s]+)\)", r'<a href="\2">\1</a>', line)

    out: list[str] = []
    paragraph: list[str] = []
    in_list = in_code = False

    def flush() -> None:
        nonlocal in_list
        if paragraph:
            out.append("<p>" + " ".join(paragraph) + "</p>")
            paragraph.clear()
        if in_list:
            out.append("</ul>")
            in_list = False

    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("```"):
            flush()
            out.append("</code></pre>" if in_code else "<pre><code>")
            in_code = not in_code
            continue
        if in_code:
            out.append(html.escape(line, quote=False))
            continue
        heading = re.match(r"(#{1,6})\s+(.*)", line)
        bullet = re.match(r"\s*[-*]\s+(.*)", line)
        if heading:
            flush()
            level = min(len(heading.group(1)) + 1, 6)
            out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif bullet:
            if paragraph:
                out.append("<p>" + " ".join(paragraph) + "</p>")
                paragraph.clear()
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{inline(bullet.group(1))}</li>")
        elif not line.strip():
            flush()
        else:
            if in_list:
                flush()
            paragraph.append(inline(line.strip()))
    flush()
    if in_code:
        out.append("</code></pre>")
    return "\n".join(out)


def deposition_metadata(citation: Citation) -> dict[str, Any]:
    """The ``metadata`` object of a deposition: ``citation`` as Zenodo spells it (description in HTML).

    Carries ``doi`` when the citation has one (the pre-reserved DOI, in ``metadata.json``).
    """
    out: dict[str, Any] = {
        "upload_type": UPLOAD_TYPE,
        "title": citation.title,
        "creators": [_creator(c) for c in citation.creators],
        "description": markdown_to_html(citation.description.strip()),
        "access_right": ACCESS_RIGHT,
        "license": citation.license,
        "publication_date": citation.publication_date,
    }
    if citation.keywords:
        out["keywords"] = list(citation.keywords)
    if citation.version:
        out["version"] = citation.version
    if citation.related:
        out["related_identifiers"] = [{"identifier": r.identifier, "relation": r.relation} for r in citation.related]
    if citation.doi:
        out["doi"] = citation.doi
    return out


def _creator(creator: Creator) -> dict[str, str]:
    out = {"name": creator.name}
    if creator.affiliation:
        out["affiliation"] = creator.affiliation
    if creator.orcid:
        out["orcid"] = creator.orcid
    return out


__all__ = ["ACCESS_RIGHT", "UPLOAD_TYPE", "deposition_metadata", "markdown_to_html"]
