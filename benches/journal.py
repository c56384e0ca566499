#!/usr/bin/env python3
"""Writes a synthetic run journal of N records (the engine's own line format: CRC-32 of the
compact, key-sorted JSON of each record), to measure `runbook show` on a long run."""
import json
import sys
import zlib


def line(sequence, data):
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return '{"crc":"%08x","seq":%d,"data":%s}\n' % (zlib.crc32(text.encode()), sequence, text)


def main(path, records):
    with open(path, "w") as out:
        out.write(line(1, {"record": "run_started", "format": 1, "run_id": "bench-run", "runbook": "bench",
                           "file": "/dev/null", "digest": "sha256:0", "started_at": "2026-11-24T00:00:00Z",
                           "pid": 1, "host": "bench", "user": "bench", "vars": [], "options": {"timestamp": "20261124_000000"}}))
        sequence = 1
        step = 0
        while sequence < records - 1:
            sequence += 1
            out.write(line(sequence, {"event": "step_started", "step": f"s{step % 1000}", "name": f"s{step % 1000}",
                                      "phase": "forward", "attempt": step // 1000 + 1, "time": "2026-11-24T00:00:01.000Z"}))
            sequence += 1
            out.write(line(sequence, {"event": "step_finished", "step": f"s{step % 1000}", "phase": "forward",
                                      "status": "succeeded", "attempts": step // 1000 + 1, "duration": 5, "message": None,
                                      "outputs": [["value", str(step)]], "time": "2026-11-24T00:00:01.005Z"}))
            step += 1
        sequence += 1
        out.write(line(sequence, {"event": "run_finished", "outcome": "succeeded", "exit_code": 0, "duration": 1000,
                                  "needs_a_person": [], "time": "2026-11-24T00:10:00.000Z"}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
