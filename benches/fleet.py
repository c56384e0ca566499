#!/usr/bin/env python3
"""The fleet benchmark (scripts/bench-fleet): 8 hosts x 10 trivial steps in batches of 2, each
host a real sshd on 127.0.0.1 started here as tests/common/sshd.rs starts one (own host key,
generated client key, `UsePAM no`, `StrictModes no`, run as the current user, `SetEnv
SHLVL=1` so that root's bash does not source ~/.bashrc for every session).

Measured in the same run, best of RUNS (3) each:
  - the engine: `runbook run` of the runbook, whole and per step of a host's sequence; the
    marginal cost of a step (a run of 20 steps per host minus a run of 10, per added step:
    the engine's start, validation, plan and opening the masters cancel out); and a step once
    its host is connected (from the JSON events: per host, its second step's start to its
    last step's end, per step);
  - bare `ssh -S <master> host true` on a control master per host, in the same shape (two
    hosts at a time, each host's commands in sequence);
  - with ANSIBLE_PLAYBOOK set (scripts/bench-fleet installs ansible-core in a venv when it
    can), the same work as an Ansible playbook: same inventory, pipelining, ControlPersist.

Usage: fleet.py RUNBOOK_BINARY [--keep] (--keep: start the hosts, print how to reach them and
wait for Ctrl-C, for strace or perf by hand).
"""

import datetime
import json
import os
import statistics
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOSTS = 8
STEPS = 10
BATCH = 2
RUNS = int(os.environ.get("RUNS", "3"))


def free_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def sshd_program():
    for directory in os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/usr/local/sbin", "/sbin"]:
        candidate = os.path.join(directory, "sshd")
        if os.path.isabs(candidate) and os.path.isfile(candidate):
            return candidate
    sys.exit("sshd is not installed: apt-get install openssh-server")


def keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "runbook-bench", "-f", path],
                   check=True, stdin=subprocess.DEVNULL)


class Host:
    def __init__(self, name, work):
        self.name = name
        self.directory = os.path.join(work, name)
        os.makedirs(os.path.join(self.directory, "tmp"))
        os.makedirs(os.path.join(self.directory, "root"))
        keygen(self.path("host_key"))
        keygen(self.path("client_key"))
        shutil.copy(self.path("client_key.pub"), self.path("authorized_keys"))
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)
        self.port = free_port()
        with open(self.path("sshd_config"), "w") as config:
            config.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.path("host_key")}
PidFile {self.path("sshd.pid")}
AuthorizedKeysFile {self.path("authorized_keys")}
UsePAM no
StrictModes no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PrintMotd no
MaxSessions 64
MaxStartups 64
SetEnv TMPDIR={self.path("tmp")} SHLVL=1
""")
        self.log = open(self.path("sshd.log"), "w")
        self.process = subprocess.Popen([sshd_program(), "-D", "-e", "-f", self.path("sshd_config")],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"sshd for {name} did not start: {open(self.path('sshd.log')).read()}")
                time.sleep(0.01)
        key = open(self.path("host_key.pub")).read().split()[:2]
        self.known_host = f"[127.0.0.1]:{self.port} {' '.join(key)}\n"

    def path(self, name):
        return os.path.join(self.directory, name)

    def stop(self):
        self.process.terminate()
        self.process.wait()


def runbook_text(hosts, known_hosts, steps):
    lines = ["version: 1", "name: fleet-bench", f"concurrency: {BATCH}", "hosts:"]
    for host in hosts:
        lines.append(f'  {host.name}: {{ address: 127.0.0.1, port: {host.port}, identity_file: "{host.path("client_key")}", groups: [web] }}')
    lines += ["ssh:", "  connect_timeout: 5s",
              f'  options: {{ UserKnownHostsFile: "{known_hosts}", GlobalKnownHostsFile: /dev/null, StrictHostKeyChecking: "yes", IdentitiesOnly: "yes" }}',
              "rollout:", "  web:", f"    batch: [{BATCH}]", "steps:"]
    for number in range(steps):
        lines += [f"  - id: s{number}", "    on: web", "    shell: [sh, -c]", '    run: "true"']
        if number:
            lines.append(f"    needs: [s{number - 1}]")
    return "\n".join(lines) + "\n"


def ssh_options(host, known_hosts):
    return ["-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-i", host.path("client_key"),
            "-p", str(host.port)]


def best(measure):
    return min(measure() for _ in range(RUNS))


def engine_run(binary, runbook, state, agent=True):
    """The run's wall time, and its steady per-step time: per host, from the start of its
    second step to the end of its last, per step (its master is open by then), averaged.
    With agent=False every step runs in an ssh session of its own (RUNBOOK_REMOTE_AGENT=off,
    what a host without perl gets)."""
    environment = dict(os.environ)
    if not agent:
        environment["RUNBOOK_REMOTE_AGENT"] = "off"
    started = time.perf_counter()
    result = subprocess.run([binary, "--log-format", "json", "run", runbook, "--progress", "none",
                             "--state-dir", state], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=environment)
    took = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"the run failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
    first, last, count = {}, {}, {}
    for line in result.stdout.decode().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        host, step = event.get("host"), event.get("step", "")
        if not host or step.startswith("s0@"):
            continue
        moment = datetime.datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
        if event.get("event") == "step_started":
            first[host] = min(first.get(host, moment), moment)
            count[host] = count.get(host, 0) + 1
        elif event.get("event") == "step_finished":
            last[host] = max(last.get(host, moment), moment)
    steady = statistics.mean((last[host] - first[host]) / count[host] for host in first)
    return took, steady


def in_batches(hosts, per_host):
    """Runs per_host(host) for two hosts at a time, batch after batch; returns the wall time."""
    started = time.perf_counter()
    for first in range(0, len(hosts), BATCH):
        threads = [threading.Thread(target=per_host, args=(host,)) for host in hosts[first:first + BATCH]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return time.perf_counter() - started


def bare_ssh(hosts, known_hosts, work):
    masters = []
    for index, host in enumerate(hosts):
        socket_path = os.path.join(work, f"m{index}")
        host.socket = socket_path
        masters.append(subprocess.Popen(["ssh", "-M", "-N", "-S", socket_path, "-o", "ControlPersist=no"]
                                        + ssh_options(host, known_hosts) + ["127.0.0.1"],
                                        stdin=subprocess.DEVNULL))
    for host in hosts:
        while not os.path.exists(host.socket):
            time.sleep(0.005)

    def ten(host):
        for _ in range(STEPS):
            subprocess.run(["ssh", "-S", host.socket, "-o", "BatchMode=yes", "-p", str(host.port), "127.0.0.1", "true"],
                           check=True, stdin=subprocess.DEVNULL)

    try:
        return best(lambda: in_batches(hosts, ten))
    finally:
        for master in masters:
            master.terminate()
            master.wait()


def ansible_run(playbook_binary, hosts, known_hosts, work):
    inventory = os.path.join(work, "inventory.ini")
    with open(inventory, "w") as file:
        file.write("[web]\n")
        for host in hosts:
            file.write(f"{host.name} ansible_host=127.0.0.1 ansible_port={host.port} "
                       f"ansible_ssh_private_key_file={host.path('client_key')}\n")
    playbook = os.path.join(work, "playbook.yml")
    tasks = "".join(f"    - name: s{number}\n      ansible.builtin.command: \"true\"\n" for number in range(STEPS))
    with open(playbook, "w") as file:
        file.write(f"- hosts: web\n  gather_facts: false\n  serial: {BATCH}\n  tasks:\n{tasks}")
    config = os.path.join(work, "ansible.cfg")
    with open(config, "w") as file:
        file.write(f"""[defaults]
host_key_checking = True
forks = {BATCH}
interpreter_python = {sys.executable if not os.environ.get('ANSIBLE_PYTHON') else os.environ['ANSIBLE_PYTHON']}
[ssh_connection]
pipelining = True
control_path_dir = {work}/cp
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes
""")
    environment = dict(os.environ, ANSIBLE_CONFIG=config)

    def once():
        started = time.perf_counter()
        result = subprocess.run([playbook_binary, "-i", inventory, playbook], env=environment,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        took = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"the playbook failed: {result.stdout.decode(errors='replace')[-3000:]}")
        return took

    # Once to open the persistent masters: the later runs reuse them, as the engine's steps
    # reuse its masters.
    once()
    return best(once)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="rbf-", dir="/tmp")
    hosts = []
    try:
        hosts = [Host(f"web{number + 1}", work) for number in range(HOSTS)]
        known_hosts = os.path.join(work, "known_hosts")
        with open(known_hosts, "w") as file:
            file.writelines(host.known_host for host in hosts)
        runbooks = {}
        for steps in (STEPS, 2 * STEPS):
            runbooks[steps] = os.path.join(work, f"fleet{steps}.yaml")
            with open(runbooks[steps], "w") as file:
                file.write(runbook_text(hosts, known_hosts, steps))
        state = os.path.join(work, "state")
        if "--keep" in sys.argv:
            print(f"hosts up; runbooks {runbooks[STEPS]} and {runbooks[2 * STEPS]}; state dir {state}")
            print(f"run: {binary} run {runbooks[STEPS]} --progress none --state-dir {state}")
            # A background job ignores SIGINT: SIGTERM stops the hosts too.
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
            return
        sequence = len(hosts) // BATCH * STEPS  # steps of a host's sequence, one batch after another
        results = {}
        for agent in (True, False):
            walls = {STEPS: [], 2 * STEPS: []}
            steadies = []
            for steps in (STEPS, 2 * STEPS):
                engine_run(binary, runbooks[steps], state, agent)  # warm: page cache, state dir
            for _ in range(RUNS):
                for steps in (STEPS, 2 * STEPS):
                    wall, steady = engine_run(binary, runbooks[steps], state, agent)
                    walls[steps].append(wall)
                    steadies.append(steady)
            results[agent] = (min(walls[STEPS]), min(steadies), (min(walls[2 * STEPS]) - min(walls[STEPS])) / sequence)
        bare = bare_ssh(hosts, known_hosts, work)
        per_bare = bare / sequence
        print(f"fleet benchmark: {HOSTS} hosts x {STEPS} trivial steps, batches of {BATCH}, sshd on 127.0.0.1 "
              f"({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; best of {RUNS})")
        print(f"  bare ssh -S <master> host true:       {bare * 1000:7.0f} ms, {per_bare * 1000:5.1f} ms per command (same shape)")
        for agent in (True, False):
            engine, steady, marginal = results[agent]
            per_step = engine / sequence
            print("  with the host agent (the default):" if agent else
                  "  a session per step (RUNBOOK_REMOTE_AGENT=off, a host without perl):")
            print(f"    runbook run, whole:                 {engine * 1000:7.0f} ms, {per_step * 1000:5.1f} ms per step of a host's sequence")
            print(f"    runbook run, each added step:       {marginal * 1000:7.1f} ms (20 steps per host minus 10, per added step)")
            print(f"    runbook run, a step once connected: {steady * 1000:7.1f} ms (per host, its 2nd step's start to its last's end, per step)")
            print(f"    engine per step - bare ssh:         {(steady - per_bare) * 1000:+7.1f} ms once connected, "
                  f"{(marginal - per_bare) * 1000:+.1f} ms per added step, {(per_step - per_bare) * 1000:+.1f} ms over the whole run "
                  f"(ratios {steady / per_bare:.2f}x / {marginal / per_bare:.2f}x / {per_step / per_bare:.2f}x)")
        engine = results[True][0]
        per_step = engine / sequence
        playbook = os.environ.get("ANSIBLE_PLAYBOOK")
        if playbook:
            ansible = ansible_run(playbook, hosts, known_hosts, work)
            per_ansible = ansible / sequence
            print(f"  ansible-playbook (pipelining, ControlPersist, serial {BATCH}, forks {BATCH}): "
                  f"{ansible * 1000:7.0f} ms, {per_ansible * 1000:5.1f} ms per step: "
                  f"{per_ansible / per_step:.1f}x the engine's")
        else:
            print(f"  ansible-playbook: {os.environ.get('ANSIBLE_MISSING', 'not run (ANSIBLE_PLAYBOOK unset)')}")
    finally:
        for host in hosts:
            host.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
