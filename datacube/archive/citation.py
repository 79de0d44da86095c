"""Who made a dataset and how to cite it: one model for the datasheet, STAC and Zenodo.

:meth:`Citation.build` parses what a person types (``"Family, Given;affiliation;orcid"``
creators, ``"10.5281/zenodo.1:isDerivedFrom"`` related works, a licence id, an ISO
date) and validates it before anything is written; :class:`InputError` names the
first bad field. The datasheet (:mod:`~sarcube.datacube.archive.datasheet`), the
STAC collection and item (:mod:`~sarcube.datacube.archive.stac`) and the Zenodo
deposition metadata (:func:`~sarcube.datacube.archive.zenodo.deposition_metadata`)
are renderings of one :class:`Citation`.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sarcube.errors import InputError

DEFAULT_LICENSE = "cc-by-4.0"

#: licence ids Zenodo accepts (its vocabulary is SPDX ids in lower case); the open data and code ones
LICENSES = frozenset({
    "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-4.0",
    "cc-by-3.0", "cc-by-sa-3.0", "cc0-1.0", "odc-by-1.0", "odbl-1.0", "pddl-1.0",
    "mit", "apache-2.0", "bsd-2-clause", "bsd-3-clause", "gpl-3.0-only", "gpl-3.0-or-later",
    "lgpl-3.0-or-later", "mpl-2.0", "eupl-1.2", "etalab-2.0", "ogl-uk-3.0",
})

#: relation types Zenodo accepts for related_identifiers (DataCite)
RELATION_TYPES = (
    "isCitedBy", "cites", "isSupplementTo", "isSupplementedBy", "isContinuedBy", "continues",
    "isDescribedBy", "describes", "hasMetadata", "isMetadataFor", "isNewVersionOf",
    "isPreviousVersionOf", "isPartOf", "hasPart", "isReferencedBy", "references",
    "isDocumentedBy", "documents", "isCompiledBy", "compiles", "isVariantFormOf",
    "isOriginalFormOf", "isIdenticalTo", "isAlternateIdentifier", "isReviewedBy", "reviews",
    "isDerivedFrom", "isSourceOf", "requires", "isRequiredBy", "isObsoletedBy", "obsoletes",
)

_CREATOR_HELP = (
    "expected 'Family, Given[;affiliation[;orcid]]', e.g. 'Doe, Jane;University of Bern;0000-0002-1825-0097'"
)
#: longest title / version / other one-line field accepted (DataCite titles are short; 100,000 characters is a mistake)
TITLE_MAX_CHARS = 300
VERSION_MAX_CHARS = 40
FIELD_MAX_CHARS = 500
_MARKUP = re.compile(r"<\s*/?\s*[A-Za-z!?]|&[#A-Za-z0-9]+;|\]\(|`")


def plain_line(value: str, flag: str, max_chars: int = FIELD_MAX_CHARS) -> str:
    """``value`` stripped, refused (:class:`InputError`) if it holds control characters, markup or is too long.

    Titles and versions land verbatim in README.md, metadata.json, STAC and Zenodo: one plain line each.
    """
    text = str(value).strip()
    bad = next((ch for ch in text if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")), None)
    if bad is not None:
        raise InputError(f"{flag} holds the control character {bad!r}: give it as one line of plain text")
    if len(text) > max_chars:
        raise InputError(
            f"{flag} is {len(text)} characters long: keep it under {max_chars} (put detail in --description)"
        )
    if _MARKUP.search(text):
        raise InputError(f"{flag} {text[:60]!r} holds HTML/markdown markup: give it as plain text")
    return text


_DOI = re.compile(r"10\.\d{4,9}/\S+")
_ORCID = re.compile(r"\d{4}-\d{4}-\d{4}-\d{3}[\dX]")


def orcid_is_valid(orcid: str) -> bool:
    """True for a well-formed ORCID iD whose ISO 7064 11,2 check digit is right."""
    if not _ORCID.fullmatch(orcid):
        return False
    digits = orcid.replace("-", "")
    total = 0
    for ch in digits[:-1]:
        total = (total + int(ch)) * 2
    check = (12 - total % 11) % 11
    return digits[-1] == ("X" if check == 10 else str(check))


@dataclass(frozen=True)
class Creator:
    """One creator of the dataset."""

    #: "Family, Given"
    name: str
    affiliation: str | None = None
    #: bare ORCID iD (0000-0002-1825-0097)
    orcid: str | None = None

    @classmethod
    def parse(cls, text: str) -> Creator:
        """From ``"Family, Given[;affiliation[;orcid]]"``; :class:`InputError` naming the entry otherwise."""
        parts = [p.strip() for p in plain_line(text, "--creator").split(";")]
        if len(parts) > 3:
            raise InputError(f"--creator {text!r}: too many ';' fields; {_CREATOR_HELP}")
        name = parts[0]
        family, sep, given = name.partition(",")
        if not sep or not family.strip() or not given.strip() or "," in given:
            raise InputError(f"--creator {text!r}: name must be 'Family, Given'; {_CREATOR_HELP}")
        name = f"{family.strip()}, {given.strip()}"
        affiliation = parts[1] if len(parts) > 1 and parts[1] else None
        orcid = None
        if len(parts) > 2 and parts[2]:
            orcid = re.sub(r"^(https?://)?orcid\.org/", "", parts[2]).upper()
            if not orcid_is_valid(orcid):
                raise InputError(
                    f"--creator {text!r}: ORCID {parts[2]!r} is not a valid iD "
                    "(format 0000-0000-0000-000X, check digit ISO 7064 11,2)"
                )
        return cls(name=name, affiliation=affiliation, orcid=orcid)


@dataclass(frozen=True)
class RelatedIdentifier:
    """A related work: identifier (DOI, URL or arXiv id) and DataCite relation."""

    identifier: str
    relation: str

    @classmethod
    def parse(cls, text: str) -> RelatedIdentifier:
        """From ``"IDENTIFIER:relation"`` (e.g. ``10.5281/zenodo.123:isDerivedFrom``)."""
        identifier, sep, relation = str(text).strip().rpartition(":")
        if not sep or not identifier or not relation:
            raise InputError(
                f"--related {text!r}: expected IDENTIFIER:relation, e.g. 10.5281/zenodo.123:isDerivedFrom"
            )
        by_lower = {r.lower(): r for r in RELATION_TYPES}
        if relation.lower() not in by_lower:
            raise InputError(
                f"--related {text!r}: relation {relation!r} is not one Zenodo accepts; "
                f"use one of {', '.join(RELATION_TYPES)}"
            )
        identifier = re.sub(r"^(https?://(dx\.)?doi\.org/|doi:)", "", identifier, flags=re.IGNORECASE)
        is_url = re.fullmatch(r"https?://\S+\.\S+", identifier)
        is_arxiv = re.fullmatch(r"arXiv:\S+", identifier, re.IGNORECASE)
        if not (_DOI.fullmatch(identifier) or is_url or is_arxiv):
            raise InputError(
                f"--related {text!r}: identifier {identifier!r} is not a DOI (10.xxxx/...), URL or arXiv id"
            )
        return cls(identifier=identifier, relation=by_lower[relation.lower()])


@dataclass(frozen=True)
class Citation:
    """Who made the dataset and how to cite it, validated (build it with :meth:`build`)."""

    #: title of the dataset
    title: str
    creators: tuple[Creator, ...]
    #: licence id (SPDX, lower case, as Zenodo spells it, e.g. "cc-by-4.0")
    license: str
    #: ISO date (YYYY-MM-DD)
    publication_date: str
    version: str | None = None
    #: DOI without the resolver, once known (pre-reserved at deposition)
    doi: str | None = None
    keywords: tuple[str, ...] = ()
    #: markdown, as given: shown at the top of the datasheet, in STAC, and as HTML on Zenodo
    description: str = ""
    related: tuple[RelatedIdentifier, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        title: str,
        creators: Sequence[str],
        description: str,
        license: str = DEFAULT_LICENSE,
        keywords: Sequence[str] = (),
        version: str | None = None,
        related: Sequence[str] = (),
        publication_date: str | None = None,
    ) -> Citation:
        """Parse and validate what a person typed; :class:`InputError` names the first bad field.

        ``description`` is markdown; ``keywords`` may be comma-separated;
        ``publication_date`` defaults to today (UTC).
        """
        title = plain_line(title or "", "--title", TITLE_MAX_CHARS)
        if not title:
            raise InputError(
                "--title is empty: give the dataset a title, e.g. --title 'Avalanche cube, Davos, winter 2024'"
            )
        creators, keywords, related = ([v] if isinstance(v, str) else list(v) for v in (creators, keywords, related))
        if not creators:
            raise InputError(f"no --creator given: add at least one; {_CREATOR_HELP}")
        parsed = tuple(Creator.parse(c) for c in creators)
        license_id = (license or "").strip().lower()
        if license_id not in LICENSES:
            raise InputError(
                f"--license {license!r} is not a licence id Zenodo accepts here; "
                f"use one of {', '.join(sorted(LICENSES))}"
            )
        if publication_date is None:
            publication_date = dt.datetime.now(dt.UTC).date().isoformat()
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(publication_date)):
            raise InputError(f"publication date {publication_date!r} is not an ISO date (YYYY-MM-DD)")
        try:
            dt.date.fromisoformat(str(publication_date))
        except ValueError as err:
            raise InputError(f"publication date {publication_date!r} is not a real date ({err})") from err
        words: list[str] = []
        for kw in keywords:
            for word in str(kw).split(","):
                word = plain_line(word, "--keywords")
                if word and word not in words:
                    words.append(word)
        if not (description or "").strip():
            raise InputError(
                "--description is empty: give a markdown file describing the dataset, or leave it out for the default"
            )
        version = plain_line(version, "--version", VERSION_MAX_CHARS) if version else None
        return cls(
            title=title,
            creators=parsed,
            license=license_id,
            publication_date=str(publication_date),
            version=version or None,
            keywords=tuple(words),
            description=description,
            related=tuple(RelatedIdentifier.parse(r) for r in related),
        )

    def text(self) -> str:
        """One-line citation, DataCite style."""
        year = self.publication_date[:4]
        names = "; ".join(c.name for c in self.creators)
        version = f" (Version {self.version})" if self.version else ""
        where = f" https://doi.org/{self.doi}" if self.doi else ""
        return f"{names} ({year}). {self.title}{version} [Data set]. Zenodo.{where}".rstrip()


__all__ = [
    "DEFAULT_LICENSE",
    "LICENSES",
    "RELATION_TYPES",
    "Citation",
    "Creator",
    "RelatedIdentifier",
    "orcid_is_valid",
    "plain_line",
]
