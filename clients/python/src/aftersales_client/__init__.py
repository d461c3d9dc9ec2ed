"""Python client for the aftersales daemon (protobuf over ZeroMQ).

    from aftersales_client import Client, Subscriber, RpcError, pb
    with Client("tcp://127.0.0.1:7700") as c:
        print(c.ping().version)
"""
from ._proto import admin_service_pb2, case_pb2, case_service_pb2, envelope_pb2
from .client import (DEFAULT_ENDPOINT, Client, CurveKeys, RpcError, RpcTimeout,
                     StatusCode, load_curve_keys)
from .subscriber import DEFAULT_PUB_ENDPOINT, EventsLost, EventsRewound, Subscriber
from .cluster import ClusterClient, ClusterMap
from .cluster_subscriber import ClusterSubscriber, ShardEventsLost, SubscriberFailed
from .routing import shard_of_call, shard_of_case_id, shard_of_order_line


class pb:  # noqa: N801 - a namespace of the generated modules
    """The generated modules: pb.case, pb.case_service, pb.admin_service, pb.envelope."""
    case = case_pb2
    case_service = case_service_pb2
    admin_service = admin_service_pb2
    envelope = envelope_pb2


__all__ = [
    "Client", "CurveKeys", "load_curve_keys", "RpcError", "RpcTimeout", "StatusCode", "Subscriber", "EventsLost", "EventsRewound",
    "pb",
    "ClusterClient", "ClusterMap", "ClusterSubscriber", "ShardEventsLost", "SubscriberFailed",
    "shard_of_call", "shard_of_case_id", "shard_of_order_line",
    "DEFAULT_ENDPOINT", "DEFAULT_PUB_ENDPOINT",
    "admin_service_pb2", "case_pb2", "case_service_pb2", "envelope_pb2",
]
