"""Read your own status writes (controllers/own_status.py): a reconcile woken before
the watch delivered its last status patch decides on what the patch returned, not on
the older version still in the store."""

from __future__ import annotations

from modelops.controllers.own_status import MAX_UNSEEN_WRITES, OwnStatus

KEY = ("ml", "m")


def obj(version: str, reason: str) -> dict:
    return {"metadata": {"resourceVersion": version}, "status": {"reason": reason}}


def test_the_store_behind_our_write_is_replaced_by_what_the_write_returned():
    own = OwnStatus()
    v1 = obj("1", "Pending")
    own.remember(KEY, v1, obj("2", "Serving"))
    assert own.is_own_write(KEY, "2") and not own.is_own_write(KEY, "1")
    # The watch has not delivered version 2 yet: the store still says Pending.
    assert own.current(KEY, v1)["status"]["reason"] == "Serving"
    # Two writes in a row, the store still at version 1: the last write wins.
    own.remember(KEY, own.current(KEY, v1), obj("3", "Degraded"))
    assert own.current(KEY, v1)["status"]["reason"] == "Degraded"
    assert own.current(KEY, obj("2", "Serving"))["status"]["reason"] == "Degraded"
    # The store reached our write: it is believed again from now on.
    v3 = obj("3", "Degraded")
    assert own.current(KEY, v3) is v3
    assert own.current(KEY, v1) is v1


def test_a_version_the_write_did_not_follow_is_believed():
    """Someone else's change after ours: the store holds a version our write is not
    known to be newer than, and the store is used."""
    own = OwnStatus()
    own.remember(KEY, obj("1", "Pending"), obj("2", "Serving"))
    theirs = obj("7", "Edited")
    assert own.current(KEY, theirs) is theirs


def test_no_write_or_a_long_unseen_run_keeps_nothing():
    own = OwnStatus()
    v1 = obj("1", "Pending")
    own.remember(KEY, v1, None)
    assert own.current(KEY, v1) is v1 and not own.is_own_write(KEY, "1")
    body = v1
    for i in range(2, MAX_UNSEEN_WRITES + 3):
        own.remember(KEY, body, obj(str(i), f"write {i}"))
        body = own.current(KEY, v1)
    # More writes than the watch is allowed to lag behind: the store is believed.
    assert own.current(KEY, v1) is v1
    own.forget(KEY)
    assert not own.is_own_write(KEY, str(MAX_UNSEEN_WRITES + 2))


def test_the_kept_object_is_let_go_once_the_store_has_caught_up():
    own = OwnStatus()
    v1 = obj("1", "Pending")
    own.remember(KEY, v1, obj("2", "Serving"))
    # A change the write followed (delivered late) keeps it; our write's echo does not.
    assert not own.delivered(KEY, "1")
    assert own.current(KEY, v1)["status"]["reason"] == "Serving"
    assert own.delivered(KEY, "2")
    assert own._pending == {}  # nothing kept until the next write
    assert own.current(KEY, v1) is v1
