"""The demo keeps to itself: its own home, cleared at each start, never REPLITRACK_HOME (the
user's real store); a running demo's home is never cleared; commands beside it use it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ReplitrackError
from core.store import Store
from tui.cli.demo_home import DEMO_MARKER, demo_home, prepare_demo_home


def test_the_demo_home_is_not_the_store(isolated_home: Path) -> None:
    assert demo_home() != isolated_home
    assert not str(demo_home()).startswith(str(isolated_home))


def test_a_demo_started_again_starts_from_nothing(tmp_path: Path) -> None:
    home = prepare_demo_home(tmp_path / "demo")
    with Store(home) as store:
        store.put({"id": "old0demo0training000000000", "status": "processing", "trainer": "x/y"})
        store.flush()
    assert list((home / "logs").parent.iterdir())
    again = prepare_demo_home(tmp_path / "demo")
    assert sorted(p.name for p in again.iterdir()) == [DEMO_MARKER]
    with Store(again) as store:
        assert store.trainings() == []


def test_a_folder_that_is_not_a_demos_is_never_cleared(tmp_path: Path) -> None:
    real = tmp_path / "real"
    with Store(real) as store:
        store.put({"id": "mine0training0000000000000", "status": "succeeded", "trainer": "x/y"})
        store.flush()
    with pytest.raises(ReplitrackError, match="not a demo's folder"):
        prepare_demo_home(real)
    with Store(real) as store:
        assert store.get("mine0training0000000000000") is not None


def test_a_running_demos_home_is_refused(tmp_path: Path) -> None:
    home = prepare_demo_home(tmp_path / "demo")
    with Store(home):  # the running demo holds its store
        with pytest.raises(ReplitrackError, match="already runs"):
            prepare_demo_home(home)
    assert (home / DEMO_MARKER).exists()
