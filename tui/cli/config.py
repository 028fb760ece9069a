"""`replitrack config`: where replitrack keeps its files and which settings are in effect."""

from __future__ import annotations

import argparse
import os
from typing import Any

from core import config
from tui.cli import _common as c
from tui.cli import _output as o


def register(subparsers: Any) -> None:
    parser = c.add_command(subparsers, "config", run, help="show file locations and the settings in effect",
                           description="Where config, data and logs live, and which settings are in "
                                       "effect (secrets shown masked).")
    c.add_json_flag(parser)


def settings() -> dict[str, Any]:
    """The settings in effect, with where each came from; secrets masked."""
    from core.store import DB_FILE, LOG_DIR  # tinydb: loaded when used, for start-up time

    home = config.home()
    env_token = os.environ.get("REPLICATE_API_TOKEN", "").strip()
    token = config.api_token()
    token_source = ("REPLICATE_API_TOKEN" if env_token else
                    (str(config.config_path()) if token else None))
    secret = os.environ.get("REPLICATE_WEBHOOK_SECRET", "").strip()
    ngrok = os.environ.get("NGROK_AUTHTOKEN", "").strip()
    owner = c.store_owner()
    return {
        "home": str(home),
        "home_source": "REPLITRACK_HOME" if os.environ.get("REPLITRACK_HOME") else "default",
        "config_file": str(config.config_path()),
        "data_file": str(home / DB_FILE),
        "logs_dir": str(home / LOG_DIR),
        "base_url": config.base_url(),
        "base_url_source": "REPLICATE_BASE_URL" if os.environ.get("REPLICATE_BASE_URL") else "default",
        "api_token": config.mask_token(token) if token else None,
        "api_token_source": token_source,
        "webhook_secret": config.mask_token(secret) if secret else None,
        "webhook_secret_source": "REPLICATE_WEBHOOK_SECRET" if secret else "fetched from Replicate when listening",
        "ngrok_authtoken": config.mask_token(ngrok) if ngrok else None,
        "owner": {"pid": owner.pid, "api": owner.api} if owner else None,
    }


def run(args: argparse.Namespace) -> int:
    values = settings()
    if args.json:
        o.print_json(values)
        return c.EXIT_OK
    colour = o.use_colour()
    owner = values["owner"]
    lines = [
        ("Data directory", f"{values['home']}  ({'from REPLITRACK_HOME' if values['home_source'] != 'default' else 'default'})"),
        ("Config file", values["config_file"]),
        ("Store", values["data_file"]),
        ("Logs", values["logs_dir"]),
        ("Replicate API", f"{values['base_url']}  ({'from REPLICATE_BASE_URL' if values['base_url_source'] != 'default' else 'default'})"),
        ("API token", f"{values['api_token']}  (from {values['api_token_source']})" if values["api_token"]
         else "not set: export REPLICATE_API_TOKEN=r8_... (or sign in from the TUI)"),
        ("Webhook secret", f"{values['webhook_secret']}  (from REPLICATE_WEBHOOK_SECRET)" if values["webhook_secret"]
         else values["webhook_secret_source"]),
        ("ngrok authtoken", f"{values['ngrok_authtoken']}  (from NGROK_AUTHTOKEN)" if values["ngrok_authtoken"]
         else "not set (replitrack listen --no-tunnel, or --public-url URL)"),
        ("Store owner", (f"PID {owner['pid']}" + (f", local API {owner['api']}" if owner["api"] else ", no local API"))
         if owner else "none (commands use the store directly)"),
    ]
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        print(f"{o.paint(name.ljust(width), 'bold', colour=colour)}  {value}")
    return c.EXIT_OK
