"""The English and German `pass.strings` of a design: what Wallet shows instead of the keys.

Wallet looks every localizable string of pass.json up in `<language>.lproj/pass.strings`
and shows the translation for the device's language
(https://developer.apple.com/documentation/walletpasses/creating-the-source-for-a-pass).
The keys are the English texts themselves, so a pass reads correctly even where a
lookup fails, and a change message key carries its `%@` like its translations.
Strings depend only on the program's design and tiers, never on one pass: they are
packed with the design's artwork and hashed once per design version.
"""

from __future__ import annotations

from collections.abc import Mapping

from walletsvc.domain.errors import InvalidInput
from walletsvc.domain.program import LocalizedText, Program

LANGUAGES = ("en", "de")  # English first: Wallet falls back to it for other languages

TIER_LABEL = "Tier"
POINTS_LABEL = "Points"
PROGRAM_LABEL = "Program"
DETAILS_LABEL = "Details"
EXPIRES_LABEL = "Valid until"
TIER_CHANGED = "Your tier is now %@"
POINTS_CHANGED = "You now have %@ points"
OFFER_CHANGED = "Your offer is now %@"

_BUILT_IN = (
    LocalizedText(TIER_LABEL, "Stufe"),
    LocalizedText(POINTS_LABEL, "Punkte"),
    LocalizedText(PROGRAM_LABEL, "Programm"),
    LocalizedText(DETAILS_LABEL, "Details"),
    LocalizedText(EXPIRES_LABEL, "Gültig bis"),
    LocalizedText(TIER_CHANGED, "Ihre Stufe ist jetzt %@"),
    LocalizedText(POINTS_CHANGED, "Sie haben jetzt %@ Punkte"),
    LocalizedText(OFFER_CHANGED, "Ihr Angebot ist jetzt %@"),
)

# Apple's page asks for UTF-16 when a strings file holds non-ASCII characters, and German
# does ("Gültig"): "Use UTF-16 encoding for non-ASCII characters" (Creating the Source for
# a Pass, section "Localize the Strings"). A byte order mark and a fixed little-endian
# order keep the bytes the same on every machine.
_BOM = b"\xff\xfe"
_ENCODING = "utf-16-le"


def pass_strings(program: Program) -> dict[str, dict[str, str]]:
    """Return each language's table of key -> text for a program's passes."""
    entries: list[tuple[str, str, LocalizedText]] = [
        ("a built-in text", text.en, text) for text in _BUILT_IN
    ]
    # A tier's key is its name: that is what the tier field's value holds.
    entries += [(f"tier {tier.name!r}", tier.name, tier.shown) for tier in program.tiers]
    entries += [(f"field {f.key!r}", f.label.en, f.label) for f in program.apple.fields]
    tables: dict[str, dict[str, str]] = {language: {} for language in LANGUAGES}
    owners: dict[str, str] = {}
    for owner, key, text in entries:
        first = owners.setdefault(key, owner)
        for language, table in tables.items():
            value = text.in_language(language)
            if table.setdefault(key, value) != value:
                raise InvalidInput(
                    f"{owner} and {first} both use the localization key {key!r} but "
                    f"translate it differently in {language}.lproj/pass.strings; give them "
                    "the same translation or different English texts",
                    reason="apple_rule",
                    field="apple",
                )
    return tables


def strings_files(program: Program) -> dict[str, bytes]:
    """Return the bundle's `<language>.lproj/pass.strings` files for a program."""
    return {
        f"{language}.lproj/pass.strings": encode_strings(table)
        for language, table in pass_strings(program).items()
    }


def encode_strings(table: Mapping[str, str]) -> bytes:
    """Return a strings file of `"key" = "value";` lines, sorted by key, in UTF-16."""
    lines = [f'"{_escape(key)}" = "{_escape(table[key])}";\n' for key in sorted(table)]
    return _BOM + "".join(lines).encode(_ENCODING)


def decode_strings(data: bytes) -> dict[str, str]:
    """Return the table of a strings file written by `encode_strings`."""
    if not data.startswith(_BOM):
        raise ValueError("a pass.strings file written here starts with a UTF-16 byte order mark")
    table: dict[str, str] = {}
    for line in data[len(_BOM) :].decode(_ENCODING).splitlines():
        key, _, value = line.removesuffix(";").partition('" = "')
        table[_unescape(key[1:])] = _unescape(value[:-1])
    return table


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNESCAPES = {value: key for key, value in _ESCAPES.items()}


def _escape(text: str) -> str:
    return "".join(_ESCAPES.get(char, char) for char in text)


def _unescape(text: str) -> str:
    out, index = [], 0
    while index < len(text):
        pair = text[index : index + 2]
        if pair in _UNESCAPES:
            out.append(_UNESCAPES[pair])
            index += 2
        else:
            out.append(text[index])
            index += 1
    return "".join(out)
