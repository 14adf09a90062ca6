"""A local HTTP server for the network tests: serves files, records every request it gets."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path


class Site:
    """A plain HTTP server on the host's loopback that records the requests it was sent."""

    def __init__(self, root: Path) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        root.mkdir()
        (root / "hello.txt").write_text("hello from the host")
        site = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

            def do_GET(self) -> None:
                site.requests.append((self.path, dict(self.headers)))
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
