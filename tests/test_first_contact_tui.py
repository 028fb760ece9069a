"""A new user's first minutes in the app: signing in from the New-training form starts what a
sign-in at start-up starts, a refused token opens sign-in with the reason, the header never says
"live" unauthenticated, and the Sync screen never says "all in sync" when it could not check.
A real Textual app under run_test against the simulated Replicate, with a real listener."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input, Static

from core.service import TrainingService
from listener.service import Listener
from listener.tunnel import TunnelConfig
from tui.cli.runtime import free_port
from tui.screens.detail import DetailScreen
from tui.screens.models import ModelsScreen
from tui.screens.new_training import NewTrainingScreen
from tui.screens.sign_in import SignInScreen
from tui.screens.sync import SyncScreen
from tui.widgets.status_line import describe
from tui_support import FLUX, SIZE, screen_text, simulated, wait_for

IMAGES = {"input_images": "https://example.com/faces.zip"}


def header(app: Any) -> str:
    return describe(app.connection, app.clock()).plain


def note(form: Any) -> str:
    return str(form.query_one("#new-message", Static).render())


def listener_factory(service: TrainingService) -> Listener:
    return Listener(service, secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", public_port=free_port(),
                    tunnel=TunnelConfig.off())


async def test_sign_in_from_the_form_starts_listener_poller_and_import() -> None:
    async with simulated(speed=2000, token=None) as env:
        env.sim.add_model("me/flux-new")
        earlier = env.sim.add_finished_training(FLUX, "me/flux-new", {**IMAGES, "steps": 20})
        env.service.poll_running = 0.1
        app = env.app(mode="live", sign_in=True, import_on_start=True, poll=True, start_listener=True,
                      listener_factory=listener_factory)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SignInScreen), what="sign-in at start")
            await pilot.press("escape")  # "Not now": the app opens with nothing running
            await wait_for(pilot, lambda: isinstance(app.screen, ModelsScreen), what="the list")
            assert "not signed in" in header(app) and "live" not in header(app)
            assert app.listener is None and not [w for w in app.workers if w.group == "poller"], "nothing runs"

            hold = env.sim.hold(at="end")  # the new training runs until the poller has seen it run
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, NewTrainingScreen), what="the form")
            form = app.screen
            form.query_one("#new-destination", Input).value = "me/flux-new"
            form.query_one("#new-images", Input).value = IMAGES["input_images"]
            form.query_one("#new-extra", Input).value = "steps=30"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, SignInScreen), what="sign-in from the form")
            app.screen.query_one("#signin-token", Input).value = env.sim.token
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), timeout=10, what="the detail")
            started = app.screen.training_id  # type: ignore[attr-defined]

            # What a sign-in at start-up starts: the import, the listener, the poller.
            await wait_for(pilot, lambda: env.store.get(earlier["id"]) is not None, timeout=10,
                           what="the account's trainings imported")
            await wait_for(pilot, lambda: app.listener is not None and app.listener.status.accepted >= 0,
                           what="the listener")
            await hold.reached()
            await wait_for(pilot, lambda: env.store.get(started)["status"] == "processing", timeout=10,
                           what="the poller to see it run")
            hold.release()
            await wait_for(pilot, lambda: env.store.get(started)["status"] == "succeeded", timeout=15,
                           what="the poller to follow it to the end")
            assert "● live" in header(app)


async def test_a_refused_token_at_start_opens_sign_in_with_the_reason() -> None:
    async with simulated(speed=50, token="r8_revoked00000000000000000000000000000000") as env:
        env.sim.add_model("me/flux-a")
        made = env.sim.add_finished_training(FLUX, "me/flux-a", {**IMAGES, "steps": 20}, script="flux-fail-load")
        app = env.app(mode="live", import_on_start=True, poll=True)
        async with app.run_test(size=SIZE) as pilot:
            assert "live" not in header(app), "not live before the token was checked"
            await wait_for(pilot, lambda: isinstance(app.screen, SignInScreen) and app.screen.query("#signin-reason"),
                           what="sign-in with a reason")
            reason = str(app.screen.query_one("#signin-reason", Static).render())
            assert "refused" in reason and "401" in reason and "revoked" in reason
            assert "live" not in header(app) and "not signed in" in header(app)
            assert env.store.get(made["id"]) is None, "nothing imported with a refused token"

            app.screen.query_one("#signin-token", Input).value = env.sim.token
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ModelsScreen), what="the list")
            # Signed in: the account's trainings come in without asking.
            await wait_for(pilot, lambda: env.store.get(made["id"]) is not None, timeout=10, what="the import")
            await wait_for(pilot, lambda: "● live" in header(app), what="live")
            assert app.connection.account == env.sim.owner


async def test_sync_without_a_token_says_so_and_offers_sign_in() -> None:
    async with simulated(token=None) as env:
        env.sim.add_model("me/flux-a")
        done = env.sim.add_finished_training(FLUX, "me/flux-a", {**IMAGES, "steps": 20})
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("y")
            await wait_for(pilot, lambda: isinstance(app.screen, SyncScreen), what="sync")
            await wait_for(pilot, lambda: "Not signed in" in screen_text(app), what="the reason")
            assert "all in sync" not in screen_text(app)
            await pilot.press("a")
            assert "all in sync" not in screen_text(app)
            await pilot.press("i")
            await wait_for(pilot, lambda: isinstance(app.screen, SignInScreen), what="sign-in from sync")
            app.screen.query_one("#signin-token", Input).value = env.sim.token
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, SyncScreen), what="back to sync")
            await wait_for(pilot, lambda: "1 training differ" in screen_text(app), what="a real comparison")
            assert done["id"] in screen_text(app)


async def test_sync_that_could_not_check_never_says_all_in_sync() -> None:
    async with simulated() as env:
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            env.sim.faults.error_next = 50  # Replicate answers 5xx
            await pilot.press("y")
            await wait_for(pilot, lambda: "Could not compare" in screen_text(app), what="the failure")
            assert "all in sync" not in screen_text(app)


# ----- check before acting -----------------------------------------------------------------------

async def test_the_form_checks_local_files_before_creating_anything(tmp_path: Any) -> None:
    from tui.screens.confirm import ConfirmScreen

    async with simulated() as env:
        destination = f"{env.sim.owner}/never-created"
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, NewTrainingScreen), what="the form")
            form = app.screen
            form.query_one("#new-destination", Input).value = destination
            form.query_one("#new-images", Input).value = str(tmp_path / "missing-photos")
            await pilot.press("ctrl+s")
            images = form.query_one("#new-images", Input)
            await wait_for(pilot, lambda: app.focused is images, timeout=8, what="the refusal")
            assert "missing-photos: no such file or folder" in note(form)
            toasts = [n for n in app._notifications if n.title == "Check the input"]  # noqa: SLF001
            assert toasts and "missing-photos: no such file or folder" in toasts[0].message, "a toast, in view whatever the scroll"
            assert app.focused is images, "taken to the field to fix"
            assert not isinstance(app.screen, ConfirmScreen), "not even asked to create the destination"
            assert destination not in {f"{m}" for m in env.sim._models}, "nothing created on Replicate"
            assert env.sim.trainings() == []

            # A bad value far down the form: scrolled to and focused.
            images.value = "https://example.com/faces.zip"
            steps = form.query_one("#field-steps", Input)
            steps.value = "many"
            form.query_one("#new-trainer", Input).focus()
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: app.focused is steps, what="focus on the bad field")
            await pilot.pause()
            scroll = form.query_one("#new-form")
            assert scroll.scroll_y > 0 and scroll.region.contains_region(steps.region), "scrolled into view"
            assert "whole number" in note(form)
            assert destination not in env.sim._models


async def test_error_toasts_speak_to_people() -> None:
    async with simulated() as env:
        app = env.app()
        told: list[tuple[str, str]] = []
        original = app.notify

        def notify(message: str, **options: Any) -> None:
            told.append((options.get("title") or "", message))
            original(message, **options)

        app.notify = notify  # type: ignore[method-assign]
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await env.sim.stop()  # Replicate goes away
            await pilot.press("y")
            await wait_for(pilot, lambda: any("reach" in title for title, _ in told), timeout=15, what="a toast")
            titles = [title for title, _ in told if title]
            assert "Can't reach Replicate" in titles
            assert not any(title.endswith("Error") or title in ("Network", "Api", "BadArgument") for title in titles)


# ----- small things ------------------------------------------------------------------------------

async def test_o_without_a_browser_says_so_and_copies_the_url(monkeypatch: Any) -> None:
    import webbrowser

    # A "browser" that fails, as xdg-open does with nothing to hand the URL to.
    monkeypatch.setenv("BROWSER", "false")
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    async with simulated() as env:
        env.sim.add_model("me/flux-a")
        made = env.sim.add_finished_training(FLUX, "me/flux-a", {**IMAGES, "steps": 20})
        await env.service.import_all()
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("o")
            url = made["urls"]["web"]
            await wait_for(pilot, lambda: any(f"Couldn't open a browser: {url}" in n.message
                                              for n in app._notifications), what="the notice")  # noqa: SLF001
            assert app.clipboard == url


async def test_ctrl_c_leaves_the_app_with_130() -> None:
    async with simulated() as env:
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("ctrl+c")
            await pilot.pause()
        assert app.return_code == 130
