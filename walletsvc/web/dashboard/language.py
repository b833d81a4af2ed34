"""What the dashboard says, in English and German."""

from __future__ import annotations

from typing import Final

TEXT: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": "Operator dashboard",
        "program": "Programme",
        "show": "Show",
        "window": "Last 30 days, counted by the UTC day the service recorded each event.",
        "wallets": "Passes in wallets",
        "installs": "Passes installed per day",
        "removals": "Passes removed per day",
        "apple": "Apple Wallet",
        "google": "Google Wallet",
        "stores": "Scans and visits per store",
        "scans": "Scans",
        "visits": "Visits (store entered)",
        "no_stores": "This programme has no stores.",
        "coupons": "Coupon redemptions per day",
        "redemptions": "Redemptions",
        "tiers": "Customers per tier (now)",
        "customers": "Customers",
        "errors": "Wallet delivery errors",
        "errors_note": "From the database, shared by every process: pushes still owed, Google "
        "objects by state and refused callbacks. Rates over every request sent are "
        "per-process Prometheus counters (GET /metrics on each process); they are not "
        "shared, so they are not shown here.",
        "apns": "APNs pushes owed",
        "apns_failing": "of which failing (refused or unanswered)",
        "apns_rate": "APNs error rate (failing / owed)",
        "google_objects": "Google Wallet objects",
        "google_rate": "Google error rate (in error / all objects)",
        "google_fields": "Google refusals by field",
        "apns_errors": "APNs replies of failing pushes",
        "callbacks": "Refused callbacks (all programmes, ever)",
        "events": "Event delivery (all programmes)",
        "lag": "Outbox lag: age of the oldest event still owed to a sink",
        "undistributed": "Events not yet handed to the sinks",
        "sink": "Sink",
        "pending": "Owed",
        "dead": "Dead letters",
        "oldest": "Oldest owed",
        "dead_letters": "Dead letters per sink",
        "no_sinks": "No event sinks are configured.",
        "service_hidden": "Figures that span every programme (event delivery, refused "
        "callbacks) are shown only to keys not bound to one programme.",
        "none": "none",
        "table": "The figures as a table",
        "day": "Day",
        "state": "State",
        "reason": "Reason",
        "count": "Count",
        "total": "Total",
        "sign_out": "Sign out",
        "sign_in": "Sign in",
        "sign_in_heading": "Sign in to the operator dashboard",
        "sign_in_help": "Paste an API key with the scope dashboard:read. The key is not "
        "stored in your browser: a signed session cookie names it for 8 hours.",
        "api_key": "API key",
        "wrong_key": "This API key is not valid. Check it and try again.",
        "no_scope": "This API key lacks the scope dashboard:read.",
        "cross_site": "This form was sent from another site and was refused. Open the "
        "sign-in page of this service and try again.",
        "signed_out": "You are signed out.",
        "unknown_program": "There is no such programme, or this key may not see it.",
        "failed": "Something went wrong on our side. Try again in a few minutes; the "
        "request id is in the service's log.",
        "language": "Language",
    },
    "de": {
        "title": "Betriebs-Dashboard",
        "program": "Programm",
        "show": "Anzeigen",
        "window": "Letzte 30 Tage, gezählt nach dem UTC-Tag, an dem der Dienst das Ereignis "
        "erfasst hat.",
        "wallets": "Karten in den Wallets",
        "installs": "Installierte Karten pro Tag",
        "removals": "Entfernte Karten pro Tag",
        "apple": "Apple Wallet",
        "google": "Google Wallet",
        "stores": "Scans und Besuche pro Filiale",
        "scans": "Scans",
        "visits": "Besuche (Filiale betreten)",
        "no_stores": "Dieses Programm hat keine Filialen.",
        "coupons": "Eingelöste Gutscheine pro Tag",
        "redemptions": "Einlösungen",
        "tiers": "Kundinnen und Kunden pro Stufe (jetzt)",
        "customers": "Kundinnen und Kunden",
        "errors": "Fehler bei der Zustellung an die Wallets",
        "errors_note": "Aus der Datenbank, für alle Prozesse gleich: noch offene Pushes, "
        "Google-Objekte nach Zustand und abgelehnte Callbacks. Quoten über alle gesendeten "
        "Anfragen sind Prometheus-Zähler je Prozess (GET /metrics in jedem Prozess); sie "
        "werden nicht geteilt und daher hier nicht gezeigt.",
        "apns": "Offene APNs-Pushes",
        "apns_failing": "davon fehlgeschlagen (abgelehnt oder ohne Antwort)",
        "apns_rate": "APNs-Fehlerquote (fehlgeschlagen / offen)",
        "google_objects": "Google-Wallet-Objekte",
        "google_rate": "Google-Fehlerquote (fehlerhaft / alle Objekte)",
        "google_fields": "Google-Ablehnungen nach Feld",
        "apns_errors": "APNs-Antworten der fehlgeschlagenen Pushes",
        "callbacks": "Abgelehnte Callbacks (alle Programme, insgesamt)",
        "events": "Ereigniszustellung (alle Programme)",
        "lag": "Outbox-Verzug: Alter des ältesten Ereignisses, das eine Senke noch bekommt",
        "undistributed": "Ereignisse, die noch keiner Senke übergeben sind",
        "sink": "Senke",
        "pending": "Offen",
        "dead": "Unzustellbar",
        "oldest": "Ältestes offenes",
        "dead_letters": "Unzustellbare Ereignisse pro Senke",
        "no_sinks": "Es sind keine Ereignis-Senken eingerichtet.",
        "service_hidden": "Zahlen über alle Programme (Ereigniszustellung, abgelehnte "
        "Callbacks) sehen nur Schlüssel, die an kein Programm gebunden sind.",
        "none": "keine",
        "table": "Die Zahlen als Tabelle",
        "day": "Tag",
        "state": "Zustand",
        "reason": "Grund",
        "count": "Anzahl",
        "total": "Summe",
        "sign_out": "Abmelden",
        "sign_in": "Anmelden",
        "sign_in_heading": "Beim Betriebs-Dashboard anmelden",
        "sign_in_help": "Fügen Sie einen API-Schlüssel mit dem Scope dashboard:read ein. Der "
        "Schlüssel wird nicht im Browser gespeichert: ein signiertes Sitzungs-Cookie "
        "verweist 8 Stunden lang auf ihn.",
        "api_key": "API-Schlüssel",
        "wrong_key": "Dieser API-Schlüssel ist ungültig. Bitte prüfen Sie ihn und versuchen "
        "Sie es erneut.",
        "no_scope": "Diesem API-Schlüssel fehlt der Scope dashboard:read.",
        "cross_site": "Dieses Formular kam von einer anderen Website und wurde abgelehnt. "
        "Öffnen Sie die Anmeldeseite dieses Dienstes und versuchen Sie es erneut.",
        "signed_out": "Sie sind abgemeldet.",
        "unknown_program": "Dieses Programm gibt es nicht, oder dieser Schlüssel darf es "
        "nicht sehen.",
        "failed": "Bei uns ist etwas schiefgelaufen. Bitte versuchen Sie es in ein paar "
        "Minuten noch einmal; die Request-ID steht im Log des Dienstes.",
        "language": "Sprache",
    },
}


def number(value: int, language: str) -> str:
    """Return a count as people write it: 1,250 in English, 1.250 in German."""
    grouped = f"{value:,}"
    return grouped.replace(",", ".") if language == "de" else grouped


def percent(part: int, whole: int, language: str) -> str:
    """Return part/whole as a percentage with one decimal ("12.5 %" / "12,5 %")."""
    if whole == 0:
        return "\u2013"
    shown = f"{100 * part / whole:.1f}"
    return (shown.replace(".", ",") if language == "de" else shown) + " %"


def age(seconds: int, language: str) -> str:
    """Return a duration as "2 d 3 h", "3 h 12 min" or "45 s" (the same in both languages)."""
    days, rest = divmod(max(seconds, 0), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"
