"""Nothing acknowledged is lost when a write fails, tested with REAL failures: a file-size limit
set with prlimit on the running `replitrack listen`, a full tmpfs, files of the wrong shape."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.store import DB_FILE, JOURNAL_FILE, Store
from test_listener_helpers import SECRET, bars, post, signed, training
from test_listener_listen import ListenProcess

ROOT = Path(__file__).resolve().parent.parent
LISTEN = ("--no-tunnel", "--json", "--no-poll", "--webhook-secret", SECRET)


def limit_file_size(pid: int, size: int | None) -> None:
    """What `prlimit --fsize` does: a write past `size` bytes of any file fails with EFBIG."""
    soft = resource.RLIM_INFINITY if size is None else size
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, resource.RLIM_INFINITY))


def long_log(lines: int) -> str:
    return bars(*range(10, 1001, 10)) + "".join(f"epoch detail {i:06d} " + "x" * 60 + "\n" for i in range(lines))


def journal_lines_parse(home: Path) -> bool:
    raw = (home / JOURNAL_FILE).read_bytes() if (home / JOURNAL_FILE).exists() else b""
    return all(json.loads(line) for line in raw.split(b"\n") if line)


async def test_a_failed_log_write_answers_503_and_the_retry_is_applied_whole(isolated_home: Path) -> None:
    listen = await ListenProcess.start(*LISTEN)
    url = (await listen.next("ready"))["receiver"]
    first = bars(10)
    assert (await post(url, *signed(training("processing", first), "msg_1")))[0] == 200
    full = long_log(800)  # ~70 KB: past the limit below
    done = training("succeeded", full, output={"version": "me/lora:" + "b" * 64, "weights": "https://x/w.tar"},
                    completed_at="2024-09-10T06:00:00Z")
    limit_file_size(listen.process.pid, 32 * 1024)
    try:
        for msg, payload in (("msg_2", training("processing", full)), ("msg_3", done)):
            status, answer, _ = await post(url, *signed(payload, msg))
            assert (status, answer["title"]) == (503, "store write failed"), answer
            assert "size limit" in answer["detail"]
        # No fragment of the failed appends: the log file is exactly what was acknowledged.
        assert (isolated_home / "logs" / f"{training('x')['id']}.log").read_text() == first
    finally:
        limit_file_size(listen.process.pid, None)
    # Replicate's retries (same webhook ids) are applied, not dropped as duplicates.
    for msg, payload in (("msg_2", training("processing", full)), ("msg_3", done)):
        status, answer, _ = await post(url, *signed(payload, msg))
        assert status == 200 and answer["outcome"] == "updated", answer
    status, answer, _ = await post(url, *signed(done, "msg_3"))
    assert (status, answer["outcome"]) == (200, "duplicate")
    code, err = await listen.stop(signal.SIGTERM)
    assert code == 0 and "Traceback" not in err
    with Store() as store:
        record = store.get(done["id"])
        assert record["status"] == "succeeded" and record["output_version"] == done["output"]["version"]
        assert store.read_log(done["id"]) == full
        assert all(store.seen_webhook(m) for m in ("msg_1", "msg_2", "msg_3"))


async def test_a_failed_journal_append_is_cut_back_and_nothing_acknowledged_is_lost(isolated_home: Path) -> None:
    listen = await ListenProcess.start(*LISTEN)
    url = (await listen.next("ready"))["receiver"]
    for n in range(12):  # other trainings make the journal larger than the log file below
        payload = training("processing", "", tid=f"other{n:02d}aaaaaaaaaaaaaaaaaaa", input={"pad": "p" * 1500})
        assert (await post(url, *signed(payload, f"pad_{n}")))[0] == 200
    log_one = bars(10, 20)
    assert (await post(url, *signed(training("processing", log_one), "msg_1")))[0] == 200
    journal = isolated_home / JOURNAL_FILE
    before = journal.stat().st_size
    assert before > 10_000
    log_two = log_one + "".join(f"step detail {i}\n" for i in range(150))  # ~2.5 KB more
    limit_file_size(listen.process.pid, before + 600)  # the journal line is cut mid-way
    try:
        status, answer, _ = await post(url, *signed(training("processing", log_two), "msg_2"))
        assert status == 503 and answer["title"] == "store write failed", answer
        assert journal.stat().st_size == before and journal_lines_parse(isolated_home)
    finally:
        limit_file_size(listen.process.pid, None)
    status, answer, _ = await post(url, *signed(training("processing", log_two), "msg_2"))  # the retry
    assert status == 200 and answer["outcome"] != "duplicate", answer  # its first answer said "not saved"
    assert (await post(url, *signed(training("succeeded", log_two), "msg_3")))[0] == 200
    listen.process.kill()  # kill -9: only what is on disk counts
    await listen.process.wait()
    assert journal_lines_parse(isolated_home)
    with Store() as store:
        assert not store.notices
        assert store.read_log(training("x")["id"]) == log_two
        assert store.get(training("x")["id"])["status"] == "succeeded"
        assert store.seen_webhook("msg_2") and store.seen_webhook("msg_3")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a disk that really fills up."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}); "
                    "the prlimit tests cover the same failures")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as file:
        try:
            while file.write(b"\0" * 4096):
                pass
        except OSError:
            pass
    return filler


async def test_a_full_disk_answers_503_for_every_kind_of_webhook(small_disk: Path) -> None:
    home = small_disk / "home"
    listen = await ListenProcess.start(*LISTEN, env={"REPLITRACK_HOME": str(home)})
    url = (await listen.next("ready"))["receiver"]
    tid = "fulldiskaaaaaaaaaaaaaaaaaa"
    log = bars(10, 500, 1000)
    kinds = [  # start, logs, output, completed (as Replicate's docs describe the four)
        ("start", training("starting", None, tid=tid)),
        ("logs", training("processing", log[:200], tid=tid)),
        ("output", training("processing", log, tid=tid, output={"version": "me/lora:" + "c" * 64})),
        ("completed", training("succeeded", log, tid=tid, output={"version": "me/lora:" + "c" * 64},
                               completed_at="2024-09-10T06:00:00Z")),
    ]
    filler = fill(small_disk)
    try:
        for kind, payload in kinds:
            status, answer, _ = await post(url, *signed(payload, f"msg_{kind}"))
            assert status == 503 and "the disk is full" in answer["detail"], (kind, answer)
    finally:
        filler.unlink()
    for kind, payload in kinds:  # Replicate retries: everything lands
        status, answer, _ = await post(url, *signed(payload, f"msg_{kind}"))
        assert status == 200, (kind, answer)
    listen.process.kill()
    _, err = await listen.process.communicate()
    assert b"Traceback" not in err
    with Store(home) as store:
        record = store.get(tid)
        assert record["status"] == "succeeded" and record["output_version"] == "me/lora:" + "c" * 64
        assert store.read_log(tid) == log
        assert not store.notices


# ----- files of the wrong shape ----------------------------------------------------------------

GOOD = {"id": "goodaaaaaaaaaaaaaaaaaaaaaa", "status": "processing", "trainer": "ostris/flux-dev-lora-trainer"}


@pytest.mark.parametrize("content, what", [
    (b"", "it is empty (0 bytes)"),
    (b"[]", "not a TinyDB document"),
    (b'{"trainings": {"abc": "x"}}', "record(s) of the wrong shape"),
    (b'{"trainings": {"abc": {"id": "../../etc/passwd"}}}', "record(s) of the wrong shape"),
    (b'{"trainings": {}, "meta": {"journal": {"seq": "x"}}}', "journal position is not a number"),
])
def test_a_store_file_of_the_wrong_shape_is_moved_aside_with_a_message(isolated_home: Path, content: bytes,
                                                                         what: str) -> None:
    isolated_home.mkdir(parents=True)
    (isolated_home / DB_FILE).write_bytes(content)
    with Store() as store:
        assert len(store.notices) == 1 and what in store.notices[0] and "moved to" in store.notices[0]
        assert store.trainings() == []
        store.put(GOOD)
    aside = list(isolated_home.glob(f"{DB_FILE}.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == content
    with Store() as reopened:
        assert reopened.get(GOOD["id"]) and not reopened.notices


def test_usable_records_of_a_damaged_file_are_kept(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True)
    (isolated_home / DB_FILE).write_text(json.dumps({"trainings": {GOOD["id"]: GOOD, "bad": [1, 2]}}))
    with Store() as store:
        assert "the 1 usable trainings in it were kept" in store.notices[0]
        assert [r["id"] for r in store.trainings()] == [GOOD["id"]]


def test_journal_lines_of_the_wrong_shape_are_moved_aside_and_the_rest_kept(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True)
    outside = isolated_home.parent / "outside.log"
    lines = [{"put": {}, "seq": 1}, {"put": "x", "seq": 2},
             {"log": "../outside", "at": 0, "text": "pwned", "seq": 3}, {"seq": 4},
             {"put": GOOD, "seq": 5}, {"webhook": "msg_ok", "seq": 6}]
    (isolated_home / JOURNAL_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))
    with Store() as store:
        assert len(store.notices) == 1 and "4 entries of the wrong shape" in store.notices[0]
        assert "moved to" in store.notices[0]
        assert store.get(GOOD["id"]) and store.seen_webhook("msg_ok")
    assert not outside.exists()
    assert list(isolated_home.glob("journal.corrupt-*.jsonl"))
    with Store() as reopened:  # folded: the bad lines are not read again
        assert not reopened.notices and reopened.get(GOOD["id"])


def test_replay_resynchronises_after_a_torn_line(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True)
    good = [{"put": GOOD, "seq": 1}, {"webhook": "msg_a", "seq": 3}]
    torn = json.dumps({"put": {**GOOD, "status": "failed"}, "seq": 2})[:30]
    (isolated_home / JOURNAL_FILE).write_text(
        json.dumps(good[0]) + "\n" + torn + "\n" + json.dumps(good[1]) + "\n")
    with Store() as store:
        assert not store.notices  # a torn write was never acknowledged: nothing to tell
        assert store.get(GOOD["id"])["status"] == "processing" and store.seen_webhook("msg_a")


def test_the_cli_says_what_happened_to_a_damaged_store(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True)
    (isolated_home / DB_FILE).write_bytes(b"")
    (isolated_home / JOURNAL_FILE).write_text(json.dumps({"put": "x", "seq": 1}) + "\n")
    env = {**os.environ, "REPLITRACK_HOME": str(isolated_home), "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "tui.cli", "list", "--no-refresh"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr
    assert "unreadable" in done.stderr and DB_FILE in done.stderr, done.stderr
    assert done.returncode in (0, 1)


# ----- privacy ---------------------------------------------------------------------------------

def test_everything_under_the_store_is_private_whatever_the_umask(isolated_home: Path) -> None:
    script = textwrap.dedent("""
        import asyncio, os
        os.umask(0)
        from core.store import Store
        from listener.events import EventLog, EventRecord

        async def main():
            store = Store()
            store.put({"id": "abc", "status": "processing"})
            store.extend_log("abc", "secret input echoed in a log\\n")
            store.remember_webhook("msg_1")
            await store.commit()
            store.flush()
            store.put({"id": "abd", "status": "processing"})
            await store.commit()
            events = EventLog(store.home / "events")
            record = EventRecord(id=events.new_id(), received_at="", method="POST", path="/", verdict="accepted",
                                 reason="", http_status=200)
            await events.add(record, b'{"input": {"hf_token": "secret"}}')
            events.close()
            store.announce_api("http://127.0.0.1:1", "s3cret")
            (store.home / "late").mkdir(mode=0o777)  # not ours: left alone
            os.chmod(store.home, 0o755)  # someone widened it: the next open narrows it again
            store.close()
            Store().close()

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "REPLITRACK_HOME": str(isolated_home)})
    assert done.returncode == 0, done.stderr
    checked = 0
    for path in [isolated_home, *isolated_home.rglob("*")]:
        if path.name == "late":
            continue
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
        checked += 1
    assert checked >= 8
