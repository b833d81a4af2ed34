"""Run the command line as `python -m walletsvc`."""

from __future__ import annotations

from walletsvc.cli import main

raise SystemExit(main())
