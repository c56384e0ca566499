#!/usr/bin/env python3
"""Generates benchmark runbooks.

layered LAYERS WIDTH: LAYERS x WIDTH steps, each needing 3 steps of the layer above, with a
template in every `run` (a var, the run timestamp and an upstream step's output).
typical: a 20-step runbook shaped like a real deploy (vars, env, probes, rollbacks).
warnings STEPS [clean]: STEPS independent steps, each with two warnings (a var pasted into
its script without `quote`, and no `rollback`); with `clean`, the same shape without them.
"""
import sys


def layered(layers: int, width: int) -> str:
    out = ["version: 1", "name: layered", "vars:", "  greeting: hello", "  target: /tmp/bench", "steps:"]
    for layer in range(layers):
        for index in range(width):
            step = f"s{layer}_{index}"
            out.append(f"  - id: {step}")
            if layer > 0:
                needs = [f"s{layer - 1}_{(index + offset) % width}" for offset in range(3)]
                out.append(f"    needs: [{', '.join(needs)}]")
                source = needs[0]
                out.append(f"    run: echo {{{{quote vars.greeting}}}} {{{{run.timestamp}}}} {{{{quote steps.{source}.outputs.value}}}} > /dev/null")
            else:
                out.append(f"    run: echo {{{{quote vars.greeting}}}} {{{{quote vars.target}}}}/{index} > /dev/null")
            out.append(f"    rollback: echo undo {step} > /dev/null")
    return "\n".join(out) + "\n"


def typical() -> str:
    out = [
        "version: 1",
        "name: typical",
        "vars:",
        "  app_dir: /srv/app",
        "  environment: { default: staging, choices: [staging, production] }",
        "  db_password: { env: DB_PASSWORD, secret: true }",
        "env:",
        '  PGPASSWORD: "{{vars.db_password}}"',
        "steps:",
    ]
    for index in range(20):
        out.append(f"  - id: step_{index}")
        if index:
            out.append(f"    needs: [step_{index - 1}]")
        out.append(f"    run: |")
        out.append(f"      cd {{{{quote vars.app_dir}}}} && echo {{{{quote vars.environment}}}}")
        out.append(f'      echo "value={index}" >> "$RUNBOOK_OUTPUT"')
        out.append("    verify:")
        out.append(f"      - name: check {index}")
        out.append(f"        run: test -d {{{{quote vars.app_dir}}}}")
        out.append("        within: 30s")
        out.append(f"    rollback: echo undo {{{{quote (default steps.step_{index}.outputs.value '')}}}}")
    return "\n".join(out) + "\n"


def warnings(steps: int, clean: bool) -> str:
    out = ["version: 1", "name: warnings", "vars:", "  greeting: hello", "steps:"]
    for index in range(steps):
        out.append(f"  - id: step_{index}")
        if clean:
            out.append(f"    run: echo {{{{quote vars.greeting}}}} {index} > /dev/null")
            out.append(f"    rollback: echo undo {index} > /dev/null")
        else:
            out.append(f"    run: echo {{{{vars.greeting}}}} {index} > /dev/null")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "layered":
        sys.stdout.write(layered(int(sys.argv[2]), int(sys.argv[3])))
    elif kind == "warnings":
        sys.stdout.write(warnings(int(sys.argv[2]), sys.argv[3:] == ["clean"]))
    elif kind == "typical":
        sys.stdout.write(typical())
    else:
        raise SystemExit(f"unknown kind {kind}")
