"""Create and read loyalty programs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from walletsvc.domain.api_key import Principal, Scope
from walletsvc.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from walletsvc.domain.pass_content import sample_contents
from walletsvc.domain.program import Program, validate_program
from walletsvc.services.context import ServiceContext
from walletsvc.services.ports import UnitOfWork


async def create_program(
    ctx: ServiceContext,
    principal: Principal,
    program: Program,
    assets: Mapping[str, bytes] | None = None,
) -> Program:
    """Create a program; without artwork it gets placeholder images in its colours."""
    principal.require(Scope.PROGRAMS_WRITE)
    if principal.program_id is not None:
        raise Forbidden("a key bound to one program cannot create programs")
    validate_program(program, development=ctx.development)
    check_design(ctx, program)
    now = ctx.clock()
    program = replace(program, created_at=now, updated_at=now)
    images = dict(assets) if assets else ctx.apple.default_assets(program)
    if "icon.png" not in images:
        raise InvalidInput("Apple requires an icon.png image", field="images")
    async with ctx.uow() as uow:
        if await uow.programs.get(program.id) is not None:
            raise Conflict(f"program {program.id!r} exists already", reason="already_exists")
        await uow.programs.add(program)
        await uow.programs.put_assets(program.id, images)
        await uow.commit()
    return program


async def update_program(ctx: ServiceContext, principal: Principal, program: Program) -> Program:
    """Replace a program's settings; a change owes every pass a re-render, done in background."""
    principal.require(Scope.PROGRAMS_WRITE)
    principal.require_program(program.id)
    validate_program(program, development=ctx.development)
    check_design(ctx, program)
    async with ctx.uow() as uow:
        # Locked: two updates at once get two versions, and each a refresh.
        current = await uow.programs.get_for_update(program.id)
        if current is None:
            raise NotFound("no such program")
        program = replace(
            program,
            created_at=current.created_at,
            updated_at=current.updated_at,
            design_version=current.design_version,
        )
        if program == current:
            return current  # nothing changed: no new version, no refresh
        program = replace(
            program, updated_at=ctx.clock(), design_version=current.design_version + 1
        )
        await uow.programs.update(program)
        await uow.commit()
    return program


def check_design(ctx: ServiceContext, program: Program) -> None:
    """Refuse a design whose passes would break Apple's rules, by rendering samples of it.

    Every tier's loyalty card and a coupon are rendered, so a bad design is refused when it
    is sent, not when its first pass is issued.
    """
    for sample in sample_contents(program):
        ctx.apple.render(sample)


async def list_programs(ctx: ServiceContext, principal: Principal) -> list[Program]:
    """List the programs the key may see."""
    principal.require(Scope.PROGRAMS_READ)
    async with ctx.uow() as uow:
        return await uow.programs.list(principal.program_id)


async def resolve_program(uow: UnitOfWork, principal: Principal, requested: str | None) -> Program:
    """Return the program a call acts on: the key's own, the one named, or the only one."""
    program_id = requested or principal.program_id
    if program_id is None:
        programs = await uow.programs.list()
        if len(programs) != 1:
            raise InvalidInput(
                "name the program: this key is not bound to one and there are several",
                field="program",
            )
        return programs[0]
    principal.require_program(program_id)
    program = await uow.programs.get(program_id)
    if program is None:
        raise NotFound(f"no program {program_id!r}", field="program")
    return program
