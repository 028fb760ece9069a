"""The store on real files: atomic writes, group commit, locking, corruption, crash safety."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.errors import StoreInUseError
from core.store import DB_FILE, Store, read_owner

ROOT = Path(__file__).resolve().parent.parent


def record(tid: str, **fields: object) -> dict:
    return {"id": tid, "status": "processing", "trainer": "ostris/flux-dev-lora-trainer", **fields}


def test_put_get_and_reopen(isolated_home: Path) -> None:
    with Store() as store:
        store.put(record("abc", overall_percent=12.5))
        store.put(record("abc", overall_percent=40.0))
        store.put(record("def", destination="me/lora", created_at="2024-01-01T00:00:00Z"))
        assert store.get("abc")["overall_percent"] == 40.0
    with Store() as reopened:
        assert {r["id"] for r in reopened.trainings()} == {"abc", "def"}
        assert reopened.get("abc")["overall_percent"] == 40.0
        assert reopened.find("me/lora")["id"] == "def"
        assert reopened.find("nobody/none") is None
    on_disk = json.loads((isolated_home / DB_FILE).read_text())
    assert on_disk["trainings"]["abc"]["overall_percent"] == 40.0


def test_records_are_copies_not_shared(isolated_home: Path) -> None:
    with Store() as store:
        mine = record("abc", input={"steps": 1000})
        store.put(mine)
        mine["status"] = "failed"
        got = store.get("abc")
        got["status"] = "canceled"
        assert store.get("abc")["status"] == "processing"


def test_logs_append_only_the_new_suffix(isolated_home: Path) -> None:
    with Store() as store:
        assert store.extend_log("abc", "line 1\n") == "line 1\n"
        assert store.extend_log("abc", "line 1\nline 2\n") == "line 2\n"
        assert store.extend_log("abc", "line 1\n") == ""  # shorter: an out-of-order webhook
        assert store.extend_log("abc", "line 1\nline 2\nünïcode ✓\n") == "ünïcode ✓\n"
    with Store() as reopened:
        assert reopened.read_log("abc") == "line 1\nline 2\nünïcode ✓\n"
        assert reopened.log_length("abc") == len("line 1\nline 2\nünïcode ✓\n")


def test_logs_never_enter_the_database(isolated_home: Path) -> None:
    with Store() as store:
        store.put(record("abc"))
        store.extend_log("abc", "a very distinctive log line\n")
    assert "distinctive" not in (isolated_home / DB_FILE).read_text()


def test_checkpoint_folds_the_journal_into_the_database(isolated_home: Path, monkeypatch) -> None:
    import core.store

    monkeypatch.setattr(Store, "checkpoint_bytes", 2_000)
    journal = isolated_home / core.store.JOURNAL_FILE

    async def fill() -> None:
        store = Store()
        for i in range(20):
            store.put(record(f"t{i}", input={"pad": "x" * 200}))
            store.extend_log("t0", store.read_log("t0") + f"line {i}\n")
            await store.commit()
            if store._checkpoint_task:
                await store._checkpoint_task
        assert journal.stat().st_size < 2_000 + 400  # a fresh journal after each checkpoint
        assert not list(isolated_home.glob("journal-*.jsonl"))  # folded ones are deleted
        os.close(store._lock_fd)  # a crash: no close(), no final flush

    asyncio.run(fill())
    on_disk = json.loads((isolated_home / DB_FILE).read_text())
    assert 10 <= len(on_disk["trainings"]) < 20 and on_disk["meta"]["journal"]["seq"] > 0
    with Store() as reopened:  # the rest comes back from the journal
        assert len(reopened.trainings()) == 20
        assert reopened.read_log("t0") == "".join(f"line {i}\n" for i in range(20))
    assert journal.stat().st_size == 0


def test_replay_restores_a_log_suffix_lost_with_the_page_cache(isolated_home: Path) -> None:
    async def write() -> None:
        store = Store()
        store.extend_log("abc", "one\n")
        store.flush()
        store.extend_log("abc", "one\ntwo\n")
        await store.commit()
        os.close(store._lock_fd)

    asyncio.run(write())
    log = isolated_home / "logs" / "abc.log"
    with open(log, "r+b") as file:  # what a power loss would do to an unsynced append
        file.truncate(len(b"one\n"))
    with Store() as reopened:
        assert reopened.read_log("abc") == "one\ntwo\n"


def test_webhook_ids_survive_restart(isolated_home: Path) -> None:
    with Store() as store:
        store.remember_webhook("msg_1")
        assert store.seen_webhook("msg_1") and not store.seen_webhook("msg_2")
    with Store() as reopened:
        assert reopened.seen_webhook("msg_1")


def test_invalid_training_id_is_refused(isolated_home: Path) -> None:
    with Store() as store, pytest.raises(ValueError, match="not a valid training id"):
        store.put(record("../../etc/passwd"))


async def test_group_commit_makes_concurrent_changes_durable(isolated_home: Path) -> None:
    store = Store()
    writes = 0
    original = store._append_journal

    def counting_write(*work: object) -> int:
        nonlocal writes
        writes += 1
        return original(*work)

    store._append_journal = counting_write  # type: ignore[method-assign]

    async def change(i: int) -> None:
        store.put(record(f"t{i}", overall_percent=float(i)))
        store.remember_webhook(f"msg_{i}")
        await store.commit()

    await asyncio.gather(*(change(i) for i in range(50)))
    assert not store.dirty
    assert writes < 50  # commits that arrived during a write shared the next one
    assert not (isolated_home / DB_FILE).exists()  # a commit appends to the journal only
    with Store(readonly=True) as reader:  # what is on disk now: the journal replayed
        assert len(reader.trainings()) == 50 and reader.seen_webhook("msg_49")
    store.close()


def test_second_writer_gets_a_clear_error_naming_the_pid(isolated_home: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from core.store import Store
            s = Store(); s.announce_api("http://127.0.0.1:9999")
            print("ready", flush=True); time.sleep(30)
        """)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "REPLITRACK_HOME": str(isolated_home)},
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreInUseError) as caught:
            Store()
        assert f"already in use by PID {holder.pid} (a Python process)" in str(caught.value)
        assert "REPLITRACK_HOME" in str(caught.value)
        owner = read_owner(isolated_home)
        assert owner is not None and (owner["pid"], owner["api"]) == (holder.pid, "http://127.0.0.1:9999")
        with Store(readonly=True) as reader:  # readers never need the lock
            assert reader.trainings() == []
    finally:
        holder.kill()
        holder.wait()
    assert read_owner(isolated_home) is None  # the lock died with its holder
    Store().close()


def test_files_written_by_the_standard_json_module_still_read(isolated_home: Path) -> None:
    """Stores written before orjson (json.dumps: NaN, integers past 64 bits) read whole, and such
    values are written again without loss (a huge integer) or as null (NaN, which is not JSON)."""
    isolated_home.mkdir(parents=True)
    big = 2**70
    (isolated_home / DB_FILE).write_text(json.dumps({"trainings": {
        "abc": record("abc", loss=float("nan"), input={"seed": big}),
        "def": record("def", overall_percent=12.5)}}))
    with Store() as store:
        assert not store.notices
        assert store.get("abc")["input"]["seed"] == big and store.get("def")["overall_percent"] == 12.5
        store.put(record("abc", loss=float("nan"), input={"seed": big}, overall_percent=50.0))
    with Store() as reopened:  # the change went through the journal and a checkpoint
        assert reopened.get("abc")["input"]["seed"] == big and reopened.get("abc")["overall_percent"] == 50.0
        assert reopened.get("abc")["loss"] is None or reopened.get("abc")["loss"] != reopened.get("abc")["loss"]


def test_corrupt_file_is_moved_aside_with_a_clear_notice(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True)
    (isolated_home / DB_FILE).write_text('{"trainings": {"abc": {"id": "ab')  # torn by some other tool
    with Store() as store:
        assert store.trainings() == []
        assert len(store.notices) == 1 and "moved to" in store.notices[0]
        assert "replitrack import" in store.notices[0]
        store.put(record("new"))
    aside = list(isolated_home.glob(f"{DB_FILE}.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text().startswith('{"trainings"')
    with Store() as reopened:
        assert reopened.get("new") and not reopened.notices


def test_a_failed_write_keeps_the_old_file_and_says_why(isolated_home: Path) -> None:
    # A real write failure: the writer process may not create files larger than 2 KB.
    script = textwrap.dedent("""
        import resource, signal
        from core.store import Store
        from core.errors import StoreWriteError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        s = Store()
        s.put({"id": "small", "status": "processing"}); s.flush()
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
        s.put({"id": "big", "status": "processing", "input": {"x": "y" * 5000}})
        try:
            s.flush()
        except StoreWriteError as e:
            print("ERROR:", e)
        print("dirty:", s.dirty)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "REPLITRACK_HOME": str(isolated_home)}, timeout=30)
    assert "ERROR: could not save to" in out.stdout, out.stderr
    assert "previous saved state is intact" in out.stdout
    assert "dirty: True" in out.stdout
    on_disk = json.loads((isolated_home / DB_FILE).read_text())
    assert set(on_disk["trainings"]) == {"small"}
    assert not list(isolated_home.glob(".*.tmp"))  # no temporary file left behind


WRITER = textwrap.dedent("""
    import asyncio, sys
    import core.store
    from core.store import Store

    Store.checkpoint_bytes = 20_000  # checkpoints (and journal rotations) happen during the run

    async def main():
        store = Store()
        i = 0
        while True:
            store.put({"id": f"t{i}", "status": "processing", "input": {"pad": "x" * 2000}})
            store.extend_log(f"t{i % 7}", store.read_log(f"t{i % 7}") + f"line {i}\\n")
            store.remember_webhook(f"msg_{i}")
            await store.commit()
            print(i, flush=True)  # acknowledged: durable
            i += 1

    asyncio.run(main())
""")


@pytest.mark.parametrize("kill_after", [5, 40, 120, 300])
def test_kill_9_during_writes_loses_nothing_acknowledged(isolated_home: Path, kill_after: int) -> None:
    writer = subprocess.Popen([sys.executable, "-c", WRITER], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "REPLITRACK_HOME": str(isolated_home)})
    acknowledged = -1
    try:
        for line in writer.stdout:
            acknowledged = int(line)
            if acknowledged >= kill_after:
                break
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert acknowledged >= kill_after
    with Store() as store:  # the lock of a killed process is free again
        ids = {r["id"] for r in store.trainings()}
        assert {f"t{i}" for i in range(acknowledged + 1)} <= ids
        for i in range(acknowledged + 1):
            assert store.seen_webhook(f"msg_{i}")
            assert f"line {i}\n" in store.read_log(f"t{i % 7}")
        assert not store.notices  # never a torn file


def test_unfinished_lists_only_trainings_that_have_not_ended(isolated_home: Path) -> None:
    with Store() as store:
        for tid, status in [("a", "succeeded"), ("b", "processing"), ("c", "aborted"), ("d", "starting")]:
            store.put(record(tid, status=status))
        assert sorted(r["id"] for r in store.unfinished()) == ["b", "d"]


def test_a_writer_waits_for_a_brief_holder_to_let_go(isolated_home: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom core.store import Store\ns = Store()\n"
                               "print('ready', flush=True)\ntime.sleep(0.5)\ns.close()"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "REPLITRACK_HOME": str(isolated_home)},
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreInUseError):
            Store(wait=0)  # a command that has a fallback does not wait
        with Store(wait=5) as store:  # the app starting while `logs --follow` polls
            assert store.trainings() == []
    finally:
        holder.wait()
