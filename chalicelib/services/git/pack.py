"""Refuse a git pack by the sizes it declares, before anything inflates it whole.

A pack entry's header declares its inflated size, and a delta's own header declares the sizes
of its base and of its result (git's Documentation/gitformat-pack.txt, "Deltified
representation"). A few hundred bytes can declare hundreds of MiB: zlib compresses zeros about
1000:1, and a delta of a 1 MiB base is a few bytes per copy of it. dulwich inflates each entry
whole (`pack.unpack_object` → `read_zlib_chunks`) and applies each delta whole before anyone can
look at the size, so `check_pack` walks the entries first, reading only their headers and
streaming each zlib stream through a bounded buffer (to find where the next entry starts and to
make sure it inflates to no more than it declared). Only then does dulwich get the pack.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from dulwich.pack import OFS_DELTA, REF_DELTA, read_pack_header_at

MAX_PACK_OBJECTS = 50_000  # each inflated object costs ~1 KiB of Python bookkeeping at least
_MAX_VARINT_BYTES = 10  # 70 bits: more than any size a pack may declare
_OUT_CHUNK = 64 * 1024  # the most one zlib step may produce; the scan's whole memory
_IN_CHUNK = 64 * 1024
_DELTA_HEADER_BYTES = 2 * _MAX_VARINT_BYTES
_TRAILER = 20  # SHA-1 of the pack


class PackRefused(Exception):
    """The pack declares (or inflates to) more than the caps allow, or is malformed."""


@dataclass(frozen=True)
class PackSummary:
    objects: int
    declared_bytes: int  # non-delta sizes + delta result sizes: what the objects will hold
    inflated_bytes: int  # what this scan inflated (and discarded), in bounded steps


def _varint(data: bytes | memoryview, pos: int, shift0: int = 0) -> tuple[int, int, int]:
    """A little-endian base-128 number starting at data[pos]; (first byte, value, next pos)."""
    first = data[pos] if pos < len(data) else None
    if first is None:
        raise PackRefused("the pack is truncated")
    value, shift, i = 0, 0, pos
    while True:
        if i >= len(data) or i - pos >= _MAX_VARINT_BYTES:
            raise PackRefused("a size in the pack is malformed")
        byte = data[i]
        i += 1
        if i - 1 == pos and shift0:
            value, shift = byte & ((1 << shift0) - 1), shift0
        else:
            value |= (byte & 0x7F) << shift
            shift += 7
        if not byte & 0x80:
            return first, value, i


def _skip_ofs(data: memoryview, pos: int) -> int:
    for i in range(pos, min(pos + _MAX_VARINT_BYTES, len(data))):
        if not data[i] & 0x80:
            return i + 1
    raise PackRefused("a delta base offset in the pack is malformed")


def _inflate(data: memoryview, pos: int, declared: int, keep: int) -> tuple[bytes, int, int]:
    """Stream one zlib stream from data[pos:] through a bounded buffer.

    Returns (its first `keep` inflated bytes, the position after the stream, bytes inflated).
    Refuses a stream that inflates past `declared`, as git's index-pack does.
    """
    inflater = zlib.decompressobj()
    head = b""
    total = 0
    try:
        while not inflater.eof:
            if inflater.unconsumed_tail:
                chunk: bytes | memoryview = inflater.unconsumed_tail
            else:
                chunk = data[pos:pos + _IN_CHUNK]
                if not chunk:
                    raise PackRefused("the pack is truncated")
                pos += len(chunk)
            out = inflater.decompress(chunk, _OUT_CHUNK)
            total += len(out)
            if total > declared:
                raise PackRefused("an object in the pack inflates to more than its header says")
            if len(head) < keep:
                head += out[:keep - len(head)]
    except zlib.error as e:
        raise PackRefused(f"the pack holds invalid zlib data: {e}") from e
    return head, pos - len(inflater.unused_data), total


def _entry(data: memoryview, pos: int, max_object_bytes: int) -> tuple[int, int, int]:
    """Check one entry at data[pos]: (bytes its object(s) will hold, next pos, bytes inflated)."""
    first, size, pos = _varint(data, pos, shift0=4)
    type_num = (first >> 4) & 0x07
    if type_num == OFS_DELTA:
        pos = _skip_ofs(data, pos)
    elif type_num == REF_DELTA:
        pos += 20
    elif type_num not in (1, 2, 3, 4):
        raise PackRefused(f"the pack holds an entry of unknown type {type_num}")
    delta = type_num in (OFS_DELTA, REF_DELTA)
    if size > (2 * max_object_bytes if delta else max_object_bytes):
        raise PackRefused(f"an object in the pack declares {size} bytes, more than the "
                          f"limit of {max_object_bytes} bytes per object")
    head, pos, inflated = _inflate(data, pos, size, _DELTA_HEADER_BYTES if delta else 0)
    if not delta:
        return size, pos, inflated
    _, _base_size, at = _varint(head, 0)
    _, result, _ = _varint(head, at)
    if result > max_object_bytes:
        raise PackRefused(f"a delta in the pack makes an object of {result} bytes, more "
                          f"than the limit of {max_object_bytes} bytes per object")
    return size + result, pos, inflated  # the delta data is held while it is applied


def check_pack(pack: bytes, *, max_object_bytes: int, max_total_bytes: int,
               max_objects: int = MAX_PACK_OBJECTS) -> PackSummary:
    """Check every entry's declared sizes against the caps without holding any object whole.

    `max_object_bytes` bounds each object (a plain entry's size, a delta's result, and a delta's
    own data, which is never much bigger than its result); `max_total_bytes` bounds the sum of
    what all objects (and delta data) will hold once inflated. Memory: 64 KiB of inflated data
    at a time. Raises PackRefused; returns what was declared and what the scan inflated.
    """
    data = memoryview(pack)
    try:
        _, count = read_pack_header_at(pack)
    except AssertionError as e:
        raise PackRefused(f"not a git pack: {e}") from e
    if count > max_objects:
        raise PackRefused(f"the pack holds {count} objects, more than the limit of {max_objects}")
    pos, declared_total, inflated = 12, 0, 0
    for _ in range(count):
        declared, pos, used = _entry(data, pos, max_object_bytes)
        inflated += used
        declared_total += declared
        if declared_total > max_total_bytes:
            raise PackRefused(f"the pack's objects inflate to more than {max_total_bytes} bytes")
    if len(data) - pos < _TRAILER:
        raise PackRefused("the pack is truncated")
    return PackSummary(objects=count, declared_bytes=declared_total, inflated_bytes=inflated)
