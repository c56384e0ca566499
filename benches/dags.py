#!/usr/bin/env python3
"""Writes one DAG in every tool's format, so that each runs the very same graph.

dags.py KIND SIZE DIRECTORY, where KIND is
  chain:   SIZE steps, each needing the one before;
  wide:    SIZE independent steps;
  layered: SIZE layers of 100 steps, each needing 3 steps of the layer above (the plan
           benchmark's shape, without templates).
Every step runs `true` in the engine's default shell (`bash --noprofile --norc -eo pipefail -c`).
Writes DIRECTORY/{runbook.yaml, Makefile, build.ninja, justfile}.
"""
import os
import sys

SHELL = "bash --noprofile --norc -eo pipefail -c true"


def graph(kind: str, size: int) -> list[tuple[str, list[str]]]:
    if kind == "chain":
        return [(f"s{i}", [f"s{i - 1}"] if i else []) for i in range(size)]
    if kind == "wide":
        return [(f"s{i}", []) for i in range(size)]
    if kind == "layered":
        width = 100
        steps = []
        for layer in range(size):
            for index in range(width):
                needs = [] if layer == 0 else [f"s{layer - 1}_{(index + offset) % width}" for offset in range(3)]
                steps.append((f"s{layer}_{index}", needs))
        return steps
    raise SystemExit(f"unknown kind {kind}")


def write(kind: str, size: int, directory: str) -> None:
    steps = graph(kind, size)
    os.makedirs(directory, exist_ok=True)
    runbook = ["version: 1", f"name: {kind}", "steps:"]
    for step, needs in steps:
        runbook += [f"  - id: {step}", '    run: "true"', "    readonly: true"]
        if needs:
            runbook.append(f"    needs: [{', '.join(needs)}]")
    # Every target is phony, as every step always runs.
    names = " ".join(step for step, _ in steps)
    make = [f".PHONY: all {names}", f"all: {names}"]
    for step, needs in steps:
        make += [f"{step}:{''.join(' ' + need for need in needs)}", f"\t{SHELL}"]
    ninja = ["rule step", f"  command = {SHELL}", ""]
    for step, needs in steps:
        ninja.append(f"build {step}: step{' || ' + ' '.join(needs) if needs else ''}")
    ninja += [f"build all: phony {names}", "default all"]
    # just runs a recipe's dependencies first, once each, one at a time.
    just = [f"all: {names}", ""]
    for step, needs in steps:
        just += [f"{step}:{''.join(' ' + need for need in needs)}", f"    @{SHELL}", ""]
    for name, lines in [("runbook.yaml", runbook), ("Makefile", make), ("build.ninja", ninja), ("justfile", just)]:
        with open(os.path.join(directory, name), "w") as file:
            file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    write(sys.argv[1], int(sys.argv[2]), sys.argv[3])
