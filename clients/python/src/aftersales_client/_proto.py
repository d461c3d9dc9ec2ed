"""The generated protobuf modules, imported in one place with a clear error if absent."""
try:
    from ._pb.aftersales.v1 import admin_service_pb2, case_pb2, case_service_pb2, envelope_pb2
except ImportError as e:  # pragma: no cover - only when set-up was skipped
    raise ImportError(
        "aftersales_client's protobuf modules are not generated yet: run "
        "`python clients/python/gen_proto.py` (or `make python-client-test`) first"
    ) from e

__all__ = ["admin_service_pb2", "case_pb2", "case_service_pb2", "envelope_pb2"]
