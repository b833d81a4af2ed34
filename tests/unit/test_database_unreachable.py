"""Which errors mean "the database is away" (503, retry) and which are bugs (500)."""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc

from walletsvc.storage.database import database_unreachable


def _raised_during(first: BaseException, second: BaseException) -> BaseException:
    """Return `second` as raised while handling `first` (a rollback on a dead connection)."""
    try:
        try:
            raise first
        except BaseException:
            raise second  # the implicit context is the point
    except BaseException as caught:
        return caught


def test_a_refused_or_cut_connection_means_the_database_is_away():
    assert database_unreachable(ConnectionRefusedError(111, "Connect call failed"))
    assert database_unreachable(asyncpg.exceptions.ConnectionDoesNotExistError("closed"))
    assert database_unreachable(asyncpg.exceptions.CannotConnectNowError("starting up"))
    assert database_unreachable(exc.TimeoutError("QueuePool limit reached"))


def test_an_invalidated_connection_is_found_under_the_wrapper_and_the_failed_rollback():
    wrapped = exc.DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True)
    assert database_unreachable(wrapped)
    rollback = _raised_during(
        asyncpg.exceptions.ConnectionDoesNotExistError("closed in the middle of operation"),
        exc.InterfaceError("ROLLBACK", None, Exception("the underlying connection is closed")),
    )
    assert database_unreachable(rollback)


def test_bugs_and_refused_statements_are_not_outages():
    assert not database_unreachable(ValueError("bad"))
    assert not database_unreachable(FileNotFoundError("missing"))
    assert not database_unreachable(exc.IntegrityError("INSERT", None, Exception("duplicate")))
    assert not database_unreachable(asyncpg.exceptions.InterfaceError("another operation"))
