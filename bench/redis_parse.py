#!/usr/bin/env python3
"""redis-benchmark output (stdin) → one JSON line in aftersales-bench's format.

  redis_parse.py latency      the "Latency by percentile distribution" of a -t get run
  redis_parse.py csv LABEL    the --csv summary of a -t set run
"""
import csv
import json
import re
import sys

text = sys.stdin.read().replace("\r", "\n")
if sys.argv[1] == "latency":
    rows = [(float(p), float(v)) for p, v in re.findall(r"^\s*([0-9.]+)% <= ([0-9.]+) milliseconds", text, re.M)]

    def at(q):
        for p, v in rows:
            if p >= q:
                return round(v * 1000, 2)
        return None

    rps = re.search(r"throughput summary: ([0-9.]+) requests per second", text)
    print(json.dumps({"bench": "latency", "target": "redis", "rtt_p50_us": at(50), "rtt_p99_us": at(99),
                      "rtt_p999_us": at(99.9), "rtt_max_us": round(rows[-1][1] * 1000, 2) if rows else None,
                      "calls_per_s": float(rps.group(1)) if rps else None}))
else:
    lines = [l for l in text.splitlines() if l.startswith('"')]
    r = dict(zip(*list(csv.reader(lines))[:2]))
    print(json.dumps({"bench": "throughput", "label": sys.argv[2], "calls_per_s": float(r["rps"]),
                      "call_p50_us": round(float(r["p50_latency_ms"]) * 1000, 1),
                      "call_p99_us": round(float(r["p99_latency_ms"]) * 1000, 1)}))
