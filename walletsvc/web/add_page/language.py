"""What the add page says, in English and German, and how it picks the reader's language."""

from __future__ import annotations

from datetime import datetime
from typing import Final

LANGUAGES: Final = ("en", "de")
DEFAULT: Final = "en"

# The button wording is Apple's and Google's own (their brand guidelines), per language.
TEXT: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": "Add your card to your wallet",
        "coupon_title": "Add your coupon to your wallet",
        "lead": "Keep your card on your phone and show it at the till.",
        "apple": "Add to Apple Wallet",
        "google": "Add to Google Wallet",
        "buttons": "Add to your wallet",
        "points": "Points",
        "tier": "Tier",
        "discount": "Discount",
        "valid_until": "Valid until",
        "qr_heading": "On a computer?",
        "qr_help": "Scan this code with your phone's camera to open this page on your phone.",
        "qr_label": "QR code that opens this page on a phone",
        "voided": "This card is no longer valid. Ask the shop if you think this is a mistake.",
        "redeemed": "This coupon has already been used.",
        "pass_expired": "This coupon has expired.",
        "expired_heading": "This link has expired",
        "expired": "For your security, links to your card only work for a limited time. "
        "Ask the shop for a new link, or open the latest message they sent you.",
        "invalid_heading": "This link does not work",
        "invalid": "Check that you opened the whole link from your message. If it still does "
        "not work, ask the shop for a new link.",
        "failed_heading": "Something went wrong",
        "failed": "Something went wrong on our side. Please try again in a few minutes.",
        "language": "Language",
    },
    "de": {
        "title": "Karte zur Wallet hinzufügen",
        "coupon_title": "Gutschein zur Wallet hinzufügen",
        "lead": "Haben Sie Ihre Karte immer auf dem Handy und zeigen Sie sie an der Kasse.",
        "apple": "Zu Apple Wallet hinzufügen",
        "google": "Zu Google Wallet hinzufügen",
        "buttons": "Zur Wallet hinzufügen",
        "points": "Punkte",
        "tier": "Stufe",
        "discount": "Rabatt",
        "valid_until": "Gültig bis",
        "qr_heading": "Am Computer?",
        "qr_help": "Scannen Sie diesen Code mit der Kamera Ihres Handys, um diese Seite dort "
        "zu öffnen.",
        "qr_label": "QR-Code, der diese Seite auf dem Handy öffnet",
        "voided": "Diese Karte ist nicht mehr gültig. Fragen Sie im Geschäft nach, wenn Sie "
        "einen Fehler vermuten.",
        "redeemed": "Dieser Gutschein wurde bereits eingelöst.",
        "pass_expired": "Dieser Gutschein ist abgelaufen.",
        "expired_heading": "Dieser Link ist abgelaufen",
        "expired": "Zu Ihrer Sicherheit gelten Links zu Ihrer Karte nur eine Zeit lang. "
        "Bitte fragen Sie im Geschäft nach einem neuen Link oder öffnen Sie die neueste "
        "Nachricht, die Sie bekommen haben.",
        "invalid_heading": "Dieser Link funktioniert nicht",
        "invalid": "Bitte prüfen Sie, ob Sie den ganzen Link aus Ihrer Nachricht geöffnet haben. "
        "Wenn er trotzdem nicht funktioniert, fragen Sie im Geschäft nach einem neuen Link.",
        "failed_heading": "Etwas ist schiefgelaufen",
        "failed": "Bei uns ist etwas schiefgelaufen. Bitte versuchen Sie es in ein paar "
        "Minuten noch einmal.",
        "language": "Sprache",
    },
}

# Each language's own name, as the switch shows it to someone who reads it.
NAMES: Final = {"en": "English", "de": "Deutsch"}

_MONTHS: Final = {
    "en": (
        "January February March April May June July August September October November December"
    ).split(),
    "de": (
        "Januar Februar März April Mai Juni Juli August September Oktober November Dezember"
    ).split(),
}


def choose_language(chosen: str | None, accept_language: str) -> str:
    """Return the page's language: an explicit choice, else the best Accept-Language match."""
    if chosen in LANGUAGES:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        # Equal qualities keep the header's order (earlier wins).
        ranked.append((quality, -position, tag.strip().split("-")[0].lower()))
    for quality, _position, primary in sorted(ranked, reverse=True):
        if quality > 0 and primary in LANGUAGES:
            return primary
    return DEFAULT


def long_date(moment: datetime, language: str) -> str:
    """Return a date as people write it: "31 December 2025" or "31. Dezember 2025"."""
    month = _MONTHS[language][moment.month - 1]
    if language == "de":
        return f"{moment.day}. {month} {moment.year}"
    return f"{moment.day} {month} {moment.year}"
