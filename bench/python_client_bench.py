#!/usr/bin/env python3
"""Row 9 (issue 18) for the Python client: GetCase round trips, one caller, one call at a
time, through ``aftersales_client.Client`` or through a bare pyzmq socket, on the same
daemon. bench/run.sh runs the modes in the same rounds and prints one JSON line per run
(the shape of ``aftersales-bench latency``'s).

Modes:
  bare    a pyzmq REQ socket sending the very same request bytes every call, the answer
          not decoded (what ``aftersales-bench latency`` does in Swift);
  typed   the same REQ socket, the request envelope built and the answer decoded (envelope
          and GetCaseResponse) every call: the protobuf work of a typed client call;
  client  ``Client.get_case(case_id=...)``.

Needs the environment of ``make python-client-test`` (.venv with pyzmq, protobuf and
clients/python installed).
"""
import argparse
import json
import time

import zmq

from aftersales_client import Client
from aftersales_client._proto import case_service_pb2, envelope_pb2

GET_CASE = "aftersales.v1.CaseService/GetCase"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--case-id", required=True)
    ap.add_argument("--mode", choices=["bare", "typed", "client"], required=True)
    ap.add_argument("--count", type=int, default=20000, help="measured round trips (upper bound)")
    ap.add_argument("--seconds", type=float, default=10.0, help="stop measuring after this long")
    ap.add_argument("--warmup", type=int, default=1000)
    args = ap.parse_args()

    ctx = zmq.Context()
    case_id = args.case_id

    def envelope(request_id):
        return envelope_pb2.RequestEnvelope(
            request_id=request_id, method=GET_CASE,
            payload=case_service_pb2.GetCaseRequest(case_id=case_id).SerializeToString()).SerializeToString()

    if args.mode == "client":
        client = Client(args.endpoint, context=ctx)

        def once(_):
            return client.get_case(case_id=case_id).case.case_id == case_id
    else:
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 10000)
        sock.connect(args.endpoint)
        fixed = envelope(1)
        typed = args.mode == "typed"

        def once(n):
            sock.send(envelope(n + 2) if typed else fixed)
            reply = sock.recv()
            if not typed:
                return len(reply) > 0
            resp = envelope_pb2.ResponseEnvelope()
            resp.ParseFromString(reply)
            out = case_service_pb2.GetCaseResponse()
            out.ParseFromString(resp.payload)
            return out.case.case_id == case_id

    if not once(0):
        raise SystemExit(f"{args.mode}: GetCase did not answer case {case_id}")
    for i in range(args.warmup):
        once(i)
    samples = []
    clock = time.perf_counter_ns
    deadline = clock() + int(args.seconds * 1e9)
    began, cpu0 = clock(), time.process_time_ns()
    while len(samples) < args.count:
        t0 = clock()
        if not once(len(samples)):
            raise SystemExit(f"{args.mode}: bad answer")
        t1 = clock()
        samples.append(t1 - t0)
        if t1 > deadline:
            break
    elapsed, cpu = clock() - began, time.process_time_ns() - cpu0
    samples.sort()
    n = len(samples)

    def us(q):
        return round(samples[min(n - 1, int(q * n))] / 1000, 2)

    print(json.dumps({
        "bench": "py_latency", "target": f"py-{args.mode}", "rtt_count": n,
        "rtt_p50_us": us(0.50), "rtt_p99_us": us(0.99), "rtt_p999_us": us(0.999),
        "rtt_max_us": round(samples[-1] / 1000, 2),
        "calls_per_s": round(n / (elapsed / 1e9)), "cpu_us_per_call": round(cpu / 1000 / n, 2),
        "pyzmq": zmq.__version__,
    }, sort_keys=True))


if __name__ == "__main__":
    main()
