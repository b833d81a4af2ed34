"""Linking identifiers to a customer profile."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from walletsvc.web.schemas import In


class IdentifierLinkIn(In):
    kind: Literal["email", "phone", "pos_customer"]
    value: Annotated[
        str,
        Field(
            min_length=1,
            max_length=200,
            description="kept only as a keyed hash for email and phone",
        ),
    ]
    source: Annotated[str, Field(min_length=1, max_length=64)] = "api"
