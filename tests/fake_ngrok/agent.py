"""A stand-in for the ngrok v3 agent, just enough for pyngrok to drive it offline.

What pyngrok expects (see the reference notes): `--version`, `config add-authtoken`, and
`start --none --log stdout [--config P] [--authtoken T]`, which must serve the agent API on a
loopback port *before* printing the logfmt lines pyngrok waits for. Tunnels created through
`POST /api/endpoints` are real: each gets a loopback "public" port that relays requests to the
upstream, so a webhook sent to the public URL really reaches the listener. Like ngrok, it refuses
to start without an authtoken (ERR_NGROK_4018) or with a malformed one (ERR_NGROK_105).

Test knobs (environment): FAKE_NGROK_EXIT_AFTER=<seconds> makes the agent die on its own.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = "3.22.1"
TUNNELS: dict[str, dict[str, Any]] = {}


def logline(level: str, msg: str, **fields: str) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S%z")
    extra = " ".join(f"{k}={quote(v)}" for k, v in fields.items())
    print(f't={stamp} lvl={level} msg="{msg}" {extra}'.rstrip(), flush=True)


def quote(value: str) -> str:
    return json.dumps(value) if any(ch in value for ch in ' "\\=') else value


def relay_handler(upstream: str) -> type[BaseHTTPRequestHandler]:
    class Relay(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _relay(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            request = urllib.request.Request(upstream + self.path, data=body, method=self.command, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    status, payload, reply_headers = answer.status, answer.read(), answer.headers
            except urllib.error.HTTPError as error:
                status, payload, reply_headers = error.code, error.read(), error.headers
            except OSError:
                status, payload, reply_headers = 502, b'{"error": "ERR_NGROK_8012 upstream unreachable"}', {}
            self.send_response(status)
            self.send_header("Content-Type", reply_headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _relay

    return Relay


class AgentApi(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, data: Any = None) -> None:
        payload = b"" if data is None else json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path.split("?")[0] in ("/api/endpoints", "/api/tunnels"):
            key = "endpoints" if self.path.startswith("/api/endpoints") else "tunnels"
            self._json(200, {key: list(TUNNELS.values()), "uri": self.path})
        elif self.path.split("?")[0] in {t["uri"] for t in TUNNELS.values()}:
            self._json(200, next(t for t in TUNNELS.values() if t["uri"] == self.path))
        else:
            self._json(404, {"error_code": 100, "msg": "not found"})

    def do_POST(self) -> None:
        if self.path not in ("/api/endpoints", "/api/tunnels"):
            self._json(404, {"error_code": 100, "msg": "not found"})
            return
        options = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        upstream = (options.get("upstream") or {}).get("url") or options.get("addr") or "http://localhost:80"
        if "://" not in upstream:
            upstream = f"http://localhost:{upstream}"
        relay = ThreadingHTTPServer(("127.0.0.1", 0), relay_handler(upstream.rstrip("/")))
        threading.Thread(target=relay.serve_forever, daemon=True).start()
        name = options.get("name") or f"endpoint-{uuid.uuid4()}"
        tunnel = {"id": f"ep_{uuid.uuid4().hex[:20]}", "name": name, "uri": f"{self.path}/{name}",
                  "url": f"http://127.0.0.1:{relay.server_address[1]}", "proto": "http",
                  "upstream": {"url": upstream, "protocol": "http1"}}
        TUNNELS[name] = tunnel
        logline("info", "started tunnel", obj="tunnels", name=name, addr=upstream, url=tunnel["url"])
        self._json(201, tunnel)

    def do_DELETE(self) -> None:
        for name, tunnel in list(TUNNELS.items()):
            if tunnel["uri"] == self.path:
                del TUNNELS[name]
                self._json(204)
                return
        self._json(404, {"error_code": 100, "msg": "tunnel not found"})


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


def configured_token(config_path: str | None) -> str | None:
    if not config_path or not os.path.exists(config_path):
        return None
    for line in open(config_path, encoding="utf-8"):
        key, _, value = line.strip().partition(":")
        if key.strip() == "authtoken" and value.strip():
            return value.strip().strip("'\"")
    return None


def start(args: list[str]) -> int:
    token = option(args, "--authtoken") or os.environ.get("NGROK_AUTHTOKEN") or configured_token(option(args, "--config"))
    if not token:
        logline("eror", "failed to reconnect session", obj="tunnels.session",
                err="authentication failed: Usage of ngrok requires a verified account and authtoken.\\n\\n"
                    "Install your authtoken.\\r\\n\\r\\nERR_NGROK_4018\\r\\n")
        return 1
    if len(token) < 8 or " " in token:
        logline("eror", "failed to reconnect session", obj="tunnels.session",
                err="authentication failed: The authtoken you specified does not look like a proper ngrok "
                    "authtoken.\\r\\n\\r\\nERR_NGROK_105\\r\\n")
        return 1
    api = ThreadingHTTPServer(("127.0.0.1", 0), AgentApi)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    addr = f"127.0.0.1:{api.server_address[1]}"
    logline("info", "open config file", path=option(args, "--config") or "default")
    logline("info", "starting web service", obj="web", addr=addr, allow_hosts="[]")
    logline("info", "client session established", obj="tunnels.session")
    logline("info", "tunnel session started", obj="tunnels.session")
    exit_after = float(os.environ.get("FAKE_NGROK_EXIT_AFTER") or 0)
    deadline = time.monotonic() + exit_after if exit_after else None
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.05)
    logline("eror", "session closed, exiting", obj="tunnels.session", err="simulated agent failure")
    return 1


def main(args: list[str]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args[:1] in (["--version"], ["version"]):
        print(f"ngrok version {VERSION}")
        return 0
    if args[:2] == ["config", "add-authtoken"] and len(args) > 2:
        print(f"Authtoken saved to configuration file: {option(args, '--config') or 'ngrok.yml'}")
        return 0
    if args[:1] == ["start"]:
        return start(args[1:])
    print(f"ERROR:  unknown command {' '.join(args[:2])!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
