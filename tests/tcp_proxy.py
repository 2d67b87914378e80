"""A TCP proxy for tests that cuts the connection when the server sends a marker.

It stands between a client and a real server to reproduce a connection dropped in
the middle of a transfer.
"""

from __future__ import annotations

import socket
import threading


class DroppingProxy:
    """Forward 127.0.0.1:<port> to ``target_port``; drop when the server sends ``marker``.

    The bytes before the marker are passed on, so the client sees a transfer cut short.
    """

    def __init__(self, target_port: int, marker: bytes) -> None:
        self.target_port, self.marker = target_port, marker
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.dropped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        server = socket.create_connection(("127.0.0.1", self.target_port))
        threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
        self._pipe(server, client, self.marker)

    def _pipe(self, source: socket.socket, sink: socket.socket, marker: bytes | None) -> None:
        seen = b""
        try:
            while chunk := source.recv(4096):
                seen = (seen + chunk)[-(len(chunk) + len(marker or b"")) :]
                if marker and marker in seen:
                    cut = max(len(chunk) - (len(seen) - seen.index(marker)), 0)
                    sink.sendall(chunk[:cut])
                    self.dropped.set()
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        self.listener.close()
