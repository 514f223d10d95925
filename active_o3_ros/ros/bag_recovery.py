"""Recover a rosbag2 mcap whose recorder was killed (SIGKILL, power loss) -- ``active-o3-bag-recover``.

What MCAP guarantees (and what it does not):

* An MCAP file is a magic, a header, then length-prefixed records appended in order; the
  *summary* (schema/channel/chunk indexes), the *footer* and -- for rosbag2 -- the
  ``metadata.yaml`` next to the file are written only when the writer closes.  SIGTERM /
  SIGINT let ``active-o3-bag record`` close the writer (see ``bags._Stop``), so the bag is
  complete.  SIGKILL cannot be caught: the file ends in the middle of the data section, with
  no footer and no ``metadata.yaml``, and standard readers (rosbags included) refuse it.
* Messages are written inside *chunks*; the rosbags writer keeps the current chunk in memory
  and appends it to the file when it exceeds 1 MiB.  Every chunk that was appended before
  the kill is complete and self-describing (schemas and channels are written into the data
  section before the first message that uses them), so it can be read back; the messages of
  the chunk still in memory (at most ~1 MiB) are lost, and a record cut in half by the kill
  is discarded.  Nothing else is lost, and no message is ever returned corrupted: a chunk is
  kept only if its whole record is present (and its CRC matches when the writer set one).

:func:`recover_mcap` scans the data section record by record (only the length framing is
trusted, every length is checked against the bytes present, so a garbage file is rejected
without allocating more than the file holds), keeps everything up to the last complete
record, and writes a *new* standard bag (``metadata.yaml`` + mcap, via rosbags' Writer) that
any rosbag2 tool opens.  The damaged input is never modified.

    active-o3-bag-recover broken_bag/ -o recovered_bag/
"""
from __future__ import annotations

import argparse
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

MAGIC = b"\x89MCAP0\r\n"
OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_DATA_END = 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F


class RecoveryError(RuntimeError):
    """The file is not a (damaged) rosbag2 mcap; the message says why."""


@dataclass
class RecoveryReport:
    input: str
    output: str
    complete_records: int
    messages: int
    bytes_kept: int
    bytes_discarded: int
    had_footer: bool


def find_mcap(path: Path) -> Path:
    """The single ``*.mcap`` of a bag directory (or ``path`` itself when it is a file)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise RecoveryError(f"{path} does not exist")
    files = sorted(path.glob("*.mcap"))
    if len(files) != 1:
        raise RecoveryError(f"{path} must hold exactly one .mcap file, found {[f.name for f in files]}")
    return files[0]


def _complete_prefix(data: memoryview) -> tuple[int, int, bool]:
    """(end offset of the last complete data record, number of records, footer present)."""
    if bytes(data[:8]) != MAGIC:
        raise RecoveryError("not an MCAP file (bad magic)")
    pos, count = 8, 0
    size = len(data)
    while pos + 9 <= size:
        op = data[pos]
        (length,) = struct.unpack_from("<Q", data, pos + 1)
        end = pos + 9 + length
        if end > size:  # the record the kill cut in half
            break
        if op in (OP_DATA_END, OP_FOOTER):
            return pos, count, True
        if op == 0 or op > 0x0F:
            raise RecoveryError(f"corrupt record (opcode {op:#x}) at byte {pos}; cannot recover past it")
        pos, count = end, count + 1
    return pos, count, False


def recover_mcap(src: Path, dst: Path) -> RecoveryReport:
    """Write the readable part of the (possibly truncated) mcap bag ``src`` as a new bag ``dst``."""
    import tempfile

    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.rosbag2.storage_mcap import McapReader
    from rosbags.rosbag2.errors import ReaderError

    dst = Path(dst)
    if dst.exists():
        raise RecoveryError(f"output {dst} already exists; choose a new path")
    mcap = find_mcap(Path(src))
    data = memoryview(mcap.read_bytes())
    end, count, had_footer = _complete_prefix(data)
    if count == 0:
        raise RecoveryError(f"{mcap}: no complete record after the header; nothing to recover")
    with tempfile.TemporaryDirectory() as tmp:
        fixed = Path(tmp) / "fixed.mcap"
        # data section up to the last complete record + DataEnd + a footer without summary:
        # readers then scan the data section instead of trusting (missing) indexes
        footer = bytes([OP_FOOTER]) + struct.pack("<QQQI", 20, 0, 0, 0) + MAGIC
        fixed.write_bytes(bytes(data[:end]) + bytes([OP_DATA_END]) + struct.pack("<QI", 4, 0) + footer)
        reader = McapReader(fixed)
        try:
            reader.open()
        except (ReaderError, struct.error, ValueError, IndexError) as exc:
            raise RecoveryError(f"{mcap}: cannot read the complete records: {exc}") from exc
        writer = Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        n = 0
        try:
            from active_o3_ros.ros.bags import copy_connection, typestore

            store = typestore()
            conns = {c.id: copy_connection(writer, c, store) for c in reader.connections}
            try:
                for conn, ts, raw in reader.messages(reader.connections):
                    writer.write(conns[conn.id], ts, raw)
                    n += 1
            except (ReaderError, struct.error, ValueError) as exc:  # a chunk whose CRC does not match
                raise RecoveryError(f"{mcap}: damaged chunk after {n} messages: {exc}") from exc
        finally:
            writer.close()
            reader.close()
    return RecoveryReport(str(src), str(dst), count, n, end, len(data) - end, had_footer)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="active-o3-bag-recover", description=__doc__.split("\n\n")[0],
                                 epilog="See the module docstring / README 'Reliability and security' for what "
                                        "is recoverable.", formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", type=Path, help="damaged bag directory (or its .mcap file)")
    ap.add_argument("-o", "--output", type=Path, required=True, help="new bag directory (must not exist)")
    args = ap.parse_args(argv)
    try:
        r = recover_mcap(args.input, args.output)
    except (RecoveryError, OSError) as exc:
        print(f"active-o3-bag-recover: error: {exc}", file=sys.stderr)
        return 2
    print(f"recovered {r.messages} messages ({r.complete_records} complete records, {r.bytes_kept} bytes kept, "
          f"{r.bytes_discarded} bytes of an incomplete record/chunk discarded) -> {r.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
