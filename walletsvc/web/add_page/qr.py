"""The QR code on the desktop add page, drawn server-side as inline SVG."""

from __future__ import annotations

from html import escape

import segno


def qr_svg(url: str, label: str) -> str:
    """Return an inline SVG QR code of `url`, announced to screen readers as `label`."""
    # Medium error correction survives a glare on the screen; the four-module quiet
    # zone is what the standard asks for. The size comes from CSS, not the SVG.
    code = segno.make(url, error="m", micro=False, boost_error=False)
    svg = code.svg_inline(
        scale=1,
        border=4,
        omitsize=True,
        svgclass="qr",
        lineclass=None,
        title=label,
        dark="#000",
    )
    # segno escapes the title it writes; the role makes readers announce it as an image.
    return svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
