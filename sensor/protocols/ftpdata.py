"""FTP data connection (protocols stage): the bytes of one transfer announced on a control
connection (`ftp.FtpDataExpected`), linked to it by the pipeline.

In: reassembled bytes of the data connection. Out: `DataStart`, `DataChunk`, `DataGap`,
`DataEnd` of one file object. Which TCP side sends is not the question (in active mode the FTP
server opens the connection): every byte that flows is the file; the transfer's direction
(upload = STOR/STOU/APPE) comes from the control channel. Bytes flowing the other way, which a
real FTP data connection never carries, are reported and ignored.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from sensor.anomaly import Anomaly
from sensor.protocols.base import Direction
from sensor.protocols.ftp import FtpDataExpected


@dataclass(slots=True)
class DataStart:
    txid: int
    filename: str | None
    upload: bool
    ts: float


@dataclass(slots=True)
class DataChunk:
    txid: int
    data: bytes


@dataclass(slots=True)
class DataGap:
    txid: int
    size: int


@dataclass(slots=True)
class DataEnd:
    txid: int
    complete: bool
    ts: float


class FtpDataParser:
    name = "ftp-data"

    def __init__(self, expected: FtpDataExpected, key: int) -> None:
        self.expected = expected
        self.key = key  # the pipeline's id for this transfer
        self._sender: Direction | None = None
        self._started = False
        self._ended = False
        self._eof = [False, False]

    def _start(self, ts: float) -> list[object]:
        self._started = True
        name = self.expected.filename
        filename = posixpath.basename(name.replace("\\", "/")) if name else None
        return [DataStart(self.key, filename or None, self.expected.direction == "upload", ts)]

    def _accept(self, direction: Direction, ts: float) -> tuple[list[object], bool]:
        if self._ended:
            return [], False
        if self._sender is None:
            self._sender = direction
        if direction != self._sender:
            return [
                Anomaly("ftp_data_both_ways", "data connection carried bytes both ways", ts)
            ], False
        return (self._start(ts) if not self._started else []), True

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[object]:
        out, ok = self._accept(direction, ts)
        if ok:
            out.append(DataChunk(self.key, data))
        return out

    def gap(self, direction: Direction, size: int, ts: float) -> list[object]:
        out, ok = self._accept(direction, ts)
        if ok:
            out.append(DataGap(self.key, size))
        return out

    def eof(self, direction: Direction, ts: float) -> list[object]:
        """The sender's end is the end of the file (RFC 959 stream mode: close = EOF)."""
        self._eof[direction] = True
        if self._ended or not self._started:
            return []
        if direction == self._sender or all(self._eof):
            self._ended = True
            # A close by the sender ends the file; anything else (RST, flow timeout before the
            # sender's FIN) is judged by the caller through the stream's gaps.
            return [DataEnd(self.key, direction == self._sender, ts)]
        return []
