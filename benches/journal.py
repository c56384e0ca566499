#!/usr/bin/env python3
"""Writes a synthetic run journal of N records in the engine's own line format, to measure
`runbook show` on a long run. Format 2 (the default): `{"crc":…,"seq":N,"time":…,"data":…}`
with the CRC-32 over the bytes after the `crc` member; format 1 (`--format 1`, journals of
older engines): `{"crc":…,"seq":N,"data":…}` with the CRC-32 of the key-sorted compact JSON of
`data`, the time inside it."""
import json
import sys
import zlib


def compact(data, sort):
    return json.dumps(data, sort_keys=sort, separators=(",", ":"), ensure_ascii=False)


def line(fmt, sequence, time, data):
    if fmt == 1:
        if time is not None:
            data = dict(data, time=time)
        text = compact(data, True)
        return '{"crc":"%08x","seq":%d,"data":%s}\n' % (zlib.crc32(text.encode()), sequence, text)
    body = '"seq":%d,"time":%s,"data":%s' % (sequence, json.dumps(time or "2026-11-24T00:00:00.000Z"), compact(data, False))
    return '{"crc":"%08x",%s}\n' % (zlib.crc32(body.encode()), body)


def main(path, records, fmt):
    with open(path, "w") as out:
        out.write(line(fmt, 1, None, {"record": "run_started", "format": fmt, "run_id": "bench-run", "runbook": "bench",
                                      "file": "/dev/null", "digest": "sha256:0", "started_at": "2026-11-24T00:00:00Z",
                                      "pid": 1, "host": "bench", "user": "bench", "vars": [],
                                      "options": {"jobs": None, "yes": False, "approve": [], "no_rollback": False,
                                                  "timestamp": "20261124_000000"}}))
        sequence = 1
        step = 0
        while sequence < records - 1:
            sequence += 1
            out.write(line(fmt, sequence, "2026-11-24T00:00:01.000Z",
                           {"event": "step_started", "step": f"s{step % 1000}", "name": f"s{step % 1000}",
                            "phase": "forward", "attempt": step // 1000 + 1}))
            sequence += 1
            finished = {"event": "step_finished", "step": f"s{step % 1000}", "phase": "forward",
                        "status": "succeeded", "attempts": step // 1000 + 1, "duration": 5, "message": None,
                        "outputs": [["value", str(step)]]}
            if fmt == 2:
                finished["outcome"] = "succeeded"
            out.write(line(fmt, sequence, "2026-11-24T00:00:01.005Z", finished))
            step += 1
        sequence += 1
        out.write(line(fmt, sequence, "2026-11-24T00:10:00.000Z",
                       {"event": "run_finished", "outcome": "succeeded", "exit_code": 0, "duration": 1000,
                        "needs_a_person": []}))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    fmt = 2
    if "--format" in arguments:
        at = arguments.index("--format")
        fmt = int(arguments[at + 1])
        del arguments[at:at + 2]
    main(arguments[0], int(arguments[1]), fmt)
