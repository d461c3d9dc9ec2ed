"""Which shard a call belongs to, and whether it changes anything: the contract's rules
for cluster-aware callers, the same as AfterSalesRPC's ShardKey and RequestRouting.

A cluster has a fixed number of shards. A new case lives in shard
``FNV-1a-64(utf8(order_id) + b"\\x00" + utf8(order_line_id)) mod shard_count``; an
existing case's shard is in its id, "AS" + 10 digits: ``case number mod shard_count``.
CreateCase goes by its order line, a call whose request has a ``case_id`` field goes by
that case, and every other call (ListCases, ReplayEvents, the admin calls) may go to any
member. Which requests have a ``case_id`` and which methods are mutating is read from the
generated descriptors, so a new RPC is routed without touching this file.
"""
from __future__ import annotations

import re
from typing import Dict, FrozenSet, Optional

from google.protobuf.message import Message

from .client import Client
from ._pb.aftersales.v1 import options_pb2  # after .client: its import says how to generate

CREATE_CASE_METHOD = "aftersales.v1.CaseService/CreateCase"
CASE_ID_FIELD = "case_id"

_FNV64_OFFSET_BASIS = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_UINT64_MASK = (1 << 64) - 1
_CASE_ID_RE = re.compile(r"AS([0-9]{10})")


def shard_of_order_line(order_id: str, order_line_id: str, shard_count: int) -> int:
    """The shard of a new case on this order line: FNV-1a (64-bit) over the UTF-8 of
    order_id, one zero byte and the UTF-8 of order_line_id, modulo shard_count."""
    digest = _FNV64_OFFSET_BASIS
    for byte in order_id.encode("utf-8") + b"\x00" + order_line_id.encode("utf-8"):
        digest = ((digest ^ byte) * _FNV64_PRIME) & _UINT64_MASK
    return digest % max(1, shard_count)


def shard_of_case_id(case_id: str, shard_count: int) -> Optional[int]:
    """The shard of an existing case (case number mod shard_count); None for an id no
    daemon made (not "AS" followed by 10 digits)."""
    match = _CASE_ID_RE.fullmatch(case_id)
    if match is None:
        return None
    return int(match.group(1)) % max(1, shard_count)


def _methods_with_case_id() -> Dict[str, str]:
    """Full method name -> the request field that names the case, for every method whose
    request message has a ``case_id`` field (from the descriptors)."""
    return {full: CASE_ID_FIELD for full, request_class, _ in Client.methods().values()
            if CASE_ID_FIELD in request_class.DESCRIPTOR.fields_by_name}


def _mutating_methods() -> FrozenSet[str]:
    """Full names of the methods the contract marks ``option (mutating) = true``."""
    mutating = set()
    for full, request_class, _ in Client.methods().values():
        service_name, method_name = full.split("/")
        service = request_class.DESCRIPTOR.file.pool.FindServiceByName(service_name)
        options = service.methods_by_name[method_name].GetOptions()
        if options.Extensions[options_pb2.mutating]:
            mutating.add(full)
    return frozenset(mutating)


# Full method name -> request field naming the case (e.g. GetCase -> "case_id").
CASE_ROUTED_METHODS: Dict[str, str] = _methods_with_case_id()
# Methods that change state: a retry anywhere in the cluster must carry the same key.
MUTATING_METHODS: FrozenSet[str] = _mutating_methods()


def shard_of_call(method: str, request: Message, shard_count: int) -> Optional[int]:
    """The shard ``method`` with ``request`` belongs to in a cluster of ``shard_count``
    shards; None for a call any member answers (and for a case id no daemon made)."""
    if method == CREATE_CASE_METHOD:
        return shard_of_order_line(request.order_id, request.order_line_id, shard_count)
    field = CASE_ROUTED_METHODS.get(method)
    if field is None:
        return None
    return shard_of_case_id(getattr(request, field), shard_count)
