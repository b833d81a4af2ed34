"""The ApplePasses port: pass.json rendering plus signing, off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import Executor

from walletsvc.apple.images import placeholder_images
from walletsvc.apple.pass_json import PassJsonRenderer
from walletsvc.apple.pkpass import PkpassBuilder, PreparedAssets
from walletsvc.apple.strings import strings_files
from walletsvc.domain.errors import ConfigurationError
from walletsvc.domain.pass_content import PassContent
from walletsvc.domain.program import Program, rgb_triple


class ApplePassSigner:
    """Renders and signs passes with the deployment's Pass Type ID identity."""

    def __init__(
        self,
        builder: PkpassBuilder,
        web_service_url: str,
        executor: Executor | None = None,
        *,
        require_https: bool = False,
    ) -> None:
        self._builder = builder
        # Production passes `require_https=True`: a device only talks to an https web service.
        self._renderer = PassJsonRenderer(web_service_url, require_https=require_https)
        self._executor = executor
        # Hashing artwork once per design version, not once per pass, is most of what
        # separates a fast signer from a slow one besides the RSA operation itself.
        self._prepared: dict[tuple[str, int], PreparedAssets] = {}

    @property
    def pass_type_identifier(self) -> str:
        """Return the pass type id the loaded certificate is for."""
        return self._builder.identity.pass_type_identifier

    @property
    def team_identifier(self) -> str:
        """Return the team id the loaded certificate is for."""
        return self._builder.identity.team_identifier

    def render(self, content: PassContent) -> bytes:
        """Return pass.json bytes for `content`, checked against Apple's rules (no signing)."""
        return self._renderer.render(content)

    def default_assets(self, program: Program) -> dict[str, bytes]:
        """Return placeholder artwork (icon, logo, strip) in the program's colours."""
        design = program.apple
        return placeholder_images(
            rgb_triple(design.background_color), rgb_triple(design.foreground_color)
        )

    def bundle_assets(self, program: Program, stored: Mapping[str, bytes]) -> dict[str, bytes]:
        """Return the files every pass of the design carries: artwork plus pass.strings.

        The strings follow the current design, so they replace any stored ones; a stored
        pass.strings of another language goes too, as it would lack the keys pass.json uses.
        """
        files = {
            name: data
            for name, data in stored.items()
            if not (name.endswith("/pass.strings") and name.split("/")[0].endswith(".lproj"))
        }
        files.update(strings_files(program))
        return files

    def needs_assets(self, program: Program) -> bool:
        """Tell whether this design version's assets still have to be prepared."""
        return (program.id, program.design_version) not in self._prepared

    async def package(
        self, program: Program, pass_json: bytes, assets: Mapping[str, bytes]
    ) -> bytes:
        """Return the signed .pkpass; the RSA signature runs in a worker thread."""
        identity = self._builder.identity
        if program.apple.pass_type_identifier != identity.pass_type_identifier:
            raise ConfigurationError(
                f"program {program.id!r} uses pass type {program.apple.pass_type_identifier!r} "
                f"but the configured certificate is for {identity.pass_type_identifier!r}"
            )
        key = (program.id, program.design_version)
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._builder.prepare_assets(self.bundle_assets(program, assets))
            self._prepared[key] = prepared
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._builder.build, pass_json, prepared)
