"""The add page's parts on their own: language choice, platform reading, wording, QR code."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.add_page_reader import qr_matrix, read_add_page, segno_matrix
from walletsvc.web.add_page.language import TEXT, choose_language, long_date
from walletsvc.web.add_page.platform import Platform, platform_of
from walletsvc.web.add_page.qr import qr_svg


@pytest.mark.parametrize(
    ("chosen", "header", "expected"),
    [
        (None, "", "en"),
        (None, "de-DE,de;q=0.9,en;q=0.8", "de"),
        (None, "en-GB,en;q=0.9,de;q=0.8", "en"),
        (None, "fr-FR, de;q=0.5, en;q=0.4", "de"),
        (None, "fr, es", "en"),
        (None, "de;q=0, en;q=0.1", "en"),
        (None, "DE", "de"),
        (None, "de;q=abc, en;q=0.5", "en"),
        (None, "en, de", "en"),
        (None, "de, en", "de"),
        (None, ";;,,;q=", "en"),
        ("de", "en", "de"),
        ("en", "de", "en"),
        ("fr", "de", "de"),
        ("", "de", "de"),
    ],
)
def test_language_is_the_explicit_choice_else_the_best_accepted(chosen, header, expected):
    assert choose_language(chosen, header) == expected


def test_every_language_has_every_text():
    assert set(TEXT["en"]) == set(TEXT["de"])
    assert all(value.strip() for words in TEXT.values() for value in words.values())


def test_button_wording_is_apples_and_googles_own():
    assert (TEXT["en"]["apple"], TEXT["de"]["apple"]) == (
        "Add to Apple Wallet",
        "Zu Apple Wallet hinzufügen",
    )
    assert (TEXT["en"]["google"], TEXT["de"]["google"]) == (
        "Add to Google Wallet",
        "Zu Google Wallet hinzufügen",
    )


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            Platform.IOS,
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) CriOS/120.0 Mobile/15E148 Safari/604.1",
            Platform.IOS,
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
            Platform.ANDROID,
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 "
            "(KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
            Platform.ANDROID,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
            Platform.DESKTOP,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4 Safari/605.1.15",
            Platform.DESKTOP,
        ),
        ("", Platform.DESKTOP),
        ("curl/8.5.0", Platform.DESKTOP),
    ],
)
def test_platform_is_read_from_the_user_agent(user_agent, expected):
    assert platform_of(user_agent) is expected


def test_dates_are_written_as_people_write_them():
    moment = datetime(2027, 3, 5, 9, 0, tzinfo=UTC)
    assert long_date(moment, "en") == "5 March 2027"
    assert long_date(moment, "de") == "5. März 2027"


@pytest.mark.parametrize(
    "url",
    [
        "http://walletsvc.test/add/abc",
        "https://wallet.example.de/add/6wrf9hbbwy86nnzt026npbwrn5.1798761600.AbCdEf-_0123456789ab",
    ],
)
def test_qr_code_encodes_the_url(url):
    page = read_add_page(qr_svg(url, "QR"))
    assert qr_matrix(page) == segno_matrix(url)


def test_qr_label_is_escaped():
    svg = qr_svg("http://walletsvc.test/add/abc", 'a "b" <c>')
    assert "<c>" not in svg and 'aria-label="a &quot;b&quot; &lt;c&gt;"' in svg
