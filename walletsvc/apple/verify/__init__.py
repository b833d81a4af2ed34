"""Check a .pkpass offline the way a device would: bundle, manifest, CMS signature, chain, identity.

`verify_pkpass(bundle_bytes, roots=...)` returns a `Report` of named checks; `render_text`
words it for people and `Report.as_dict` for machines. What Wallet checks:
https://developer.apple.com/documentation/walletpasses/building-a-pass
"""

from __future__ import annotations

from walletsvc.apple.verify.bundle import MAX_BUNDLE_BYTES, MAX_MEMBERS
from walletsvc.apple.verify.report import Check, Report, Status, render_text
from walletsvc.apple.verify.verifier import load_ca_file, read_bundle, verify_pkpass

__all__ = [
    "MAX_BUNDLE_BYTES",
    "MAX_MEMBERS",
    "Check",
    "Report",
    "Status",
    "load_ca_file",
    "read_bundle",
    "render_text",
    "verify_pkpass",
]
