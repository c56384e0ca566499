#!/usr/bin/env python3
"""Fills a state directory with N finished past runs of runbook `bench` (20 steps each, in the
engine's journal format 2), to measure what a busy team's state directory costs `run` and
`history`: `state.py STATE_DIR N`."""
import os
import sys

from journal import line


def journal(run_id, index):
    started = "2026-%02d-%02dT%02d:%02d:00Z" % (1 + index // 40000 % 12, 1 + index // 1440 % 28, index // 60 % 24, index % 60)
    records = [line(2, 1, None, {"record": "run_started", "format": 2, "run_id": run_id, "runbook": "bench",
                                 "file": "/dev/null", "digest": "sha256:0", "started_at": started,
                                 "pid": 1, "host": "bench", "user": "bench", "vars": [],
                                 "options": {"jobs": None, "yes": False, "approve": [], "no_rollback": False,
                                             "timestamp": run_id.split("-")[0]}})]
    sequence = 1
    for step in range(20):
        sequence += 1
        records.append(line(2, sequence, started, {"event": "step_started", "step": f"s{step}", "name": f"s{step}",
                                                    "phase": "forward", "attempt": 1}))
        sequence += 1
        records.append(line(2, sequence, started, {"event": "step_finished", "step": f"s{step}", "phase": "forward",
                                                    "status": "succeeded", "attempts": 1, "duration": 5,
                                                    "message": None, "outputs": [], "outcome": "succeeded"}))
    sequence += 1
    records.append(line(2, sequence, started, {"event": "run_finished", "outcome": "succeeded", "exit_code": 0,
                                                "duration": 100, "needs_a_person": []}))
    return "".join(records)


def main(state, count):
    for index in range(count):
        run_id = "2025%04d_%06d-%02x" % (1000 + index // 100000, index % 100000, index % 256)
        directory = os.path.join(state, "runs", run_id)
        os.makedirs(os.path.join(directory, "outputs"), exist_ok=True)
        with open(os.path.join(directory, "journal.jsonl"), "w") as out:
            out.write(journal(run_id, index))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
