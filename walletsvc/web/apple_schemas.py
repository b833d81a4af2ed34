"""Bodies of Apple's PassKit web service, in Apple's own spelling.

https://developer.apple.com/documentation/walletpasses/adding-a-web-service-to-update-passes
Wallet may add fields in a later iOS, so unknown fields are ignored here, unlike in our API.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class AppleIn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class AppleRegistrationIn(AppleIn):
    push_token: Annotated[str, Field(alias="pushToken", min_length=16, max_length=200)]


class AppleLogIn(AppleIn):
    logs: Annotated[list[str], Field(max_length=1000)]


class AppleSerialsOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    serial_numbers: list[str] = Field(alias="serialNumbers")
    last_updated: str = Field(alias="lastUpdated", description="opaque tag for the next call")
