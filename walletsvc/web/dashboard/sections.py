"""The dashboard page's sections, each drawn from the figures `read_dashboard` returned."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from walletsvc.services.dashboard import Dashboard, ProgramFigures, ServiceFigures
from walletsvc.web.dashboard.charts import Series, column_chart, row_chart
from walletsvc.web.dashboard.language import TEXT, age, number, percent
from walletsvc.web.dashboard.template import Page, document

# Apple blue and Google orange-brown; both at least 4.5:1 on white and visible on black.
APPLE = "#1f5fa8"
GOOGLE = "#a84f00"
SCANS = "#2d6a2d"
VISITS = "#6b3fa0"
PLAIN = "#555555"


def dashboard_page(board: Dashboard, language: str) -> Page:
    """Render the whole dashboard of one program."""
    words = TEXT[language]
    fmt = lambda n: number(n, language)  # noqa: E731
    figures = board.figures
    parts = [
        _header(board, language),
        f'<p class="note">{escape(words["window"])}</p>',
        _installs(board, language),
        _stores(figures, language),
        column_chart(
            "coupons",
            words["coupons"],
            board.days,
            [Series("redeemed", words["redemptions"], PLAIN, _daily(figures.coupons, board))],
            fmt=fmt,
            head=words["day"],
            table_caption=words["table"],
        ),
        _tiers(board, language),
        _errors(board, language),
    ]
    if board.service is not None:
        parts.append(_events(board, board.service, language))
    else:
        parts.append(f'<section><p class="note">{escape(words["service_hidden"])}</p></section>')
    title = f"{words['title']} · {board.program.name}"
    query = f"program={quote(board.program.id)}&"
    return Page(200, language, document(language, title, "".join(parts), "", query))


def _daily(values: dict[str, int], board: Dashboard) -> list[int]:
    return [values.get(day, 0) for day in board.days]


def _header(board: Dashboard, language: str) -> str:
    words = TEXT[language]
    options = "".join(
        f'<option value="{escape(p.id)}"{" selected" if p.id == board.program.id else ""}>'
        f"{escape(p.name)} ({escape(p.id)})</option>"
        for p in board.choices
    )
    return (
        f"<header><h1>{escape(words['title'])}</h1>"
        '<form method="get" action="/dashboard">'
        f'<label for="program">{escape(words["program"])}</label>'
        f'<select id="program" name="program">{options}</select> '
        f'<input type="hidden" name="lang" value="{language}">'
        f'<button type="submit">{escape(words["show"])}</button></form>'
        f'<form method="post" action="/dashboard/logout?lang={language}">'
        f'<button type="submit" id="sign-out">{escape(words["sign_out"])}</button></form>'
        f'</header><p data-program="{escape(board.program.id)}">'
        f"<strong>{escape(board.program.name)}</strong></p>"
    )


def _installs(board: Dashboard, language: str) -> str:
    words = TEXT[language]
    fmt = lambda n: number(n, language)  # noqa: E731
    f = board.figures

    def per_platform(values: dict[tuple[str, str], int], platform: str) -> list[int]:
        return [values.get((day, platform), 0) for day in board.days]

    charts = []
    for chart, values in (("installs", f.installs), ("removals", f.removals)):
        charts.append(
            column_chart(
                chart,
                words[chart],
                board.days,
                [
                    Series("apple", words["apple"], APPLE, per_platform(values, "apple")),
                    Series("google", words["google"], GOOGLE, per_platform(values, "google")),
                ],
                fmt=fmt,
                head=words["day"],
                table_caption=words["table"],
            )
        )
    return f"<section><h2>{escape(words['wallets'])}</h2>{''.join(charts)}</section>"


def _stores(f: ProgramFigures, language: str) -> str:
    words = TEXT[language]
    ids = sorted(set(f.stores) | set(f.scans) | set(f.visits))
    if not ids:
        body = f"<p>{escape(words['no_stores'])}</p>"
    else:
        body = row_chart(
            "stores",
            words["stores"],
            ids,
            [
                Series("scans", words["scans"], SCANS, [f.scans.get(i, 0) for i in ids]),
                Series("visits", words["visits"], VISITS, [f.visits.get(i, 0) for i in ids]),
            ],
            fmt=lambda n: number(n, language),
            head=words["stores"],
            table_caption=words["table"],
            names=[f"{f.stores.get(i, i)} ({i})" if i in f.stores else i for i in ids],
        )
    return f"<section><h2>{escape(words['stores'])}</h2>{body}</section>"


def _tiers(board: Dashboard, language: str) -> str:
    words = TEXT[language]
    f = board.figures
    tiers = list(board.program.tiers) + sorted(set(f.tiers) - set(board.program.tiers))
    chart = row_chart(
        "tiers",
        words["tiers"],
        tiers,
        [Series("customers", words["customers"], PLAIN, [f.tiers.get(t, 0) for t in tiers])],
        fmt=lambda n: number(n, language),
        head=words["tiers"],
        table_caption=words["table"],
    )
    return f"<section><h2>{escape(words['tiers'])}</h2>{chart}</section>"


def _figure(key: str, name: str, shown: str, value: int | str) -> str:
    return (
        f'<dt>{escape(name)}</dt><dd data-figure="{key}" data-value="{value}">{escape(shown)}</dd>'
    )


def _counts(caption: str, head: str, values: dict[str, int], language: str, key: str) -> str:
    words = TEXT[language]
    if not values:
        return f"<p>{escape(caption)}: {escape(words['none'])}</p>"
    rows = "".join(
        f'<tr data-{key}="{escape(name)}" data-value="{n}"><th scope="row">{escape(name)}</th>'
        f"<td>{escape(number(n, language))}</td></tr>"
        for name, n in sorted(values.items(), key=lambda item: (-item[1], item[0]))
    )
    return (
        f"<table><caption>{escape(caption)}</caption><thead><tr>"
        f'<th scope="col">{escape(head)}</th><th scope="col">{escape(words["count"])}</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _errors(board: Dashboard, language: str) -> str:
    words = TEXT[language]
    f = board.figures
    google_total = sum(f.google_states.values())
    google_errors = f.google_states.get("error", 0)
    facts = "".join(
        [
            _figure("apns-owed", words["apns"], number(f.apns_owed, language), f.apns_owed),
            _figure(
                "apns-failing",
                words["apns_failing"],
                number(f.apns_failing, language),
                f.apns_failing,
            ),
            _figure(
                "apns-rate", words["apns_rate"], percent(f.apns_failing, f.apns_owed, language), ""
            ),
            _figure(
                "google-objects",
                words["google_objects"],
                number(google_total, language),
                google_total,
            ),
            _figure(
                "google-rate",
                words["google_rate"],
                percent(google_errors, google_total, language),
                "",
            ),
        ]
    )
    parts = [
        f"<section><h2>{escape(words['errors'])}</h2>",
        f'<p class="note">{escape(words["errors_note"])}</p><dl>{facts}</dl>',
        _counts(words["apns_errors"], words["reason"], f.apns_errors, language, "apns-error"),
        _counts(words["google_objects"], words["state"], f.google_states, language, "google-state"),
        _counts(
            words["google_fields"], words["reason"], f.google_error_fields, language, "google-field"
        ),
    ]
    if board.service is not None:
        refused = {f"{s}: {r}": n for (s, r), n in board.service.callback_rejections.items()}
        parts.append(_counts(words["callbacks"], words["reason"], refused, language, "callback"))
    parts.append("</section>")
    return "".join(parts)


def _events(board: Dashboard, service: ServiceFigures, language: str) -> str:
    words = TEXT[language]
    if not service.sinks:
        return (
            f"<section><h2>{escape(words['events'])}</h2>"
            f"<p>{escape(words['no_sinks'])}</p></section>"
        )
    oldest = [s.oldest_owed_at for s in service.sinks if s.oldest_owed_at is not None]
    if service.undistributed_oldest_at is not None:
        oldest.append(service.undistributed_oldest_at)
    lag = int((board.now - min(oldest)).total_seconds()) if oldest else 0
    facts = _figure("outbox-lag", words["lag"], age(lag, language) if oldest else "\u2013", lag)
    facts += _figure(
        "undistributed",
        words["undistributed"],
        number(service.undistributed, language),
        service.undistributed,
    )
    rows = "".join(
        f'<tr data-sink="{escape(s.name)}" data-pending="{s.pending}" data-dead="{s.dead}">'
        f'<th scope="row">{escape(s.name)}</th><td>{escape(number(s.pending, language))}</td>'
        f"<td>{escape(number(s.dead, language))}</td><td>"
        + (
            escape(age(int((board.now - s.oldest_owed_at).total_seconds()), language))
            if s.oldest_owed_at
            else "\u2013"
        )
        + "</td></tr>"
        for s in service.sinks
    )
    table = (
        "<table><thead><tr>"
        + "".join(
            f'<th scope="col">{escape(words[k])}</th>'
            for k in ("sink", "pending", "dead", "oldest")
        )
        + f"</tr></thead><tbody>{rows}</tbody></table>"
    )
    names = [s.name for s in service.sinks]
    chart = row_chart(
        "dead-letters",
        words["dead_letters"],
        names,
        [Series("dead", words["dead"], PLAIN, [s.dead for s in service.sinks])],
        fmt=lambda n: number(n, language),
        head=words["sink"],
        table_caption=words["table"],
    )
    return f"<section><h2>{escape(words['events'])}</h2><dl>{facts}</dl>{table}{chart}</section>"
