"""Hand-made git packs and receive-pack requests, for tests and benches that play a hostile client.

The real `git` client never sends these (it would refuse to build them), so they are written
byte by byte after git's Documentation/gitformat-pack.txt.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

from dulwich.objects import Blob, ShaFile

BLOB, TREE, COMMIT, TAG, REF_DELTA = 3, 2, 1, 4, 7
ZERO = "0" * 40


def entry_header(type_num: int, size: int) -> bytes:
    """A pack entry header: type and (inflated) size, base-128 with 4 bits in the first byte."""
    first = (type_num << 4) | (size & 0x0F)
    size >>= 4
    out = bytearray()
    while size:
        out.append(first | 0x80)
        first = size & 0x7F
        size >>= 7
    out.append(first)
    return bytes(out)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def zeros_compressed(size: int) -> bytes:
    """zlib of `size` zero bytes, made in 1 MiB steps (never holding the inflated data)."""
    deflater = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    out = []
    left = size
    while left:
        step = min(left, len(chunk))
        out.append(deflater.compress(chunk[:step]))
        left -= step
    out.append(deflater.flush())
    return b"".join(out)


def pack(entries: list[bytes]) -> bytes:
    body = b"PACK" + struct.pack(">LL", 2, len(entries)) + b"".join(entries)
    return body + hashlib.sha1(body).digest()


def plain_entry(obj: ShaFile) -> bytes:
    raw = obj.as_raw_string()
    return entry_header(obj.type_num, len(raw)) + zlib.compress(raw)


def declared_blob_entry(size: int) -> bytes:
    """A blob of `size` zeros: a few hundred KiB on the wire for hundreds of MiB inflated."""
    return entry_header(BLOB, size) + zeros_compressed(size)


def copying_delta_entry(base: Blob, copies: int) -> bytes:
    """A REF_DELTA whose result is `copies` copies of `base` (one 2-byte copy op each)."""
    n = len(base.as_raw_string())
    assert n == 1 << 20, "the copy op below copies exactly 1 MiB"
    ops = bytes([0x80 | 0x40, 0x10]) * copies  # copy: offset 0, size byte 3 = 0x10 -> 1 MiB
    delta = varint(n) + varint(n * copies) + ops
    return entry_header(REF_DELTA, len(delta)) + bytes.fromhex(base.id.decode()) + zlib.compress(delta)


def pkt(line: bytes) -> bytes:
    return f"{len(line) + 4:04x}".encode() + line


def receive_pack_request(commands: list[tuple[str, str, str]], pack_bytes: bytes | None) -> bytes:
    """Commands (old, new, ref) with report-status, then the pack (an empty one if None)."""
    lines = []
    for n, (old, new, ref) in enumerate(commands):
        caps = b"\0report-status" if n == 0 else b""
        lines.append(pkt(f"{old} {new} {ref}".encode() + caps + b"\n"))
    if pack_bytes is None and any(new != ZERO for _, new, _ in commands):
        pack_bytes = pack([])  # what git sends when the server has every object already
    return b"".join(lines) + b"0000" + (pack_bytes or b"")


def report(body: bytes) -> list[bytes]:
    """The pkt-lines of a receive-pack answer (no side band), without the flushes."""
    out, pos = [], 0
    while pos + 4 <= len(body):
        size = int(body[pos:pos + 4], 16)
        if size == 0:
            pos += 4
            continue
        out.append(body[pos + 4:pos + size].rstrip(b"\n"))
        pos += size
    return out


def commit_of(tree: ShaFile, parents: list[bytes] | None = None, message: str = "crafted") -> ShaFile:
    from dulwich.objects import Commit, ObjectID

    commit = Commit()
    commit.tree = tree.id
    commit.parents = [ObjectID(p) for p in parents or []]
    commit.author = commit.committer = b"Hostile <h@example.test>"
    commit.author_time = commit.commit_time = 1_700_000_000
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = message.encode() + b"\n"
    return commit


def tree_of(entries: dict[bytes, tuple[int, ShaFile | bytes]]) -> ShaFile:
    """A tree from {name: (mode, object or hex id)}."""
    from dulwich.objects import ObjectID, Tree

    tree = Tree()
    for name, (mode, obj) in entries.items():
        tree.add(name, mode, ObjectID(obj) if isinstance(obj, bytes) else obj.id)
    return tree


def pack_of(objects: list[ShaFile]) -> bytes:
    return pack([plain_entry(o) for o in objects])
