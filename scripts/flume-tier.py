#!/usr/bin/env python3
"""A real tier, really failing: runs real Apache Flume 1.11 agents with durable file
channels, kills them with SIGKILL while `headwater send` delivers, and checks what
reached the final sinks.

Started by scripts/flume-tier.sh, which fetches the jars (flume_fetch in
scripts/flume-agent.sh) and cleans up after this driver if it dies. Standard library
only.

Two runs (docs/fleet.md, "A real tier, really failing"):

  side-by-side  three HTTP-source agents A, B, C (file channel -> file_roll sink);
                `headwater send --to A,B,C` spreads over them; the agent taking the most
                traffic is killed twice (when the sinks together hold 25 % and 60 % of
                the changes) and restarted 10 s later each time, on the same folders,
                so its file channel replays.
  tier          two edge agents (HTTP source -> file channel -> two Avro sinks in a
                load_balance sink group) feeding one collector (Avro source -> file
                channel -> file_roll sink); `send --to EDGE1,EDGE2`; the collector is
                killed at 25 % and 60 % of the changes at its sink and restarted 10 s
                later each time.

Each run prints, and checks, the ids missing at the final sinks (must be 0), the
duplicates and why, the changes of one record that reached the final sink(s) out of
order, and the throughput dip and the time back to full speed after each restart.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

CHANGES = 200_000
# Few keys, so that every record changes 40 times and order per record can be judged.
KEYS = 5_000
KILL_AT = (0.25, 0.60)
DOWN_SECONDS = 10.0
# How often the sink files are read: the resolution of "when the sink wrote it".
POLL_SECONDS = 0.2
# A sink is done when it has not grown for this long after the sender finished: longer
# than Flume's longest sink-runner sleep (5 s after five empty polls in a row).
QUIET_SECONDS = 6.0
# The same, while some change has not reached a final sink yet.
MISSING_QUIET_SECONDS = 15.0
# Give up waiting for the sinks after this long (a lost event never arrives).
DRAIN_LIMIT_SECONDS = 120.0
# "Full speed" after a restart: this share of the median rate before the kill.
FULL_SPEED = 0.8
# The sender's pace. Small requests, one at a time, each one file-channel transaction
# (an fsync) before the answer, were tried first: with 3 changes a request that gave
# 2,600 to 3,600 changes/s on this 2-core machine while another build ran, so 200,000
# changes took 56 s (failover) to 77 s (round-robin), and less on an idle or bigger
# machine; 2 a request would, by the same measure, have taken the two runs together past
# five minutes, and still depended on the machine. `--max-rate` holds every run to 200,000 / 2,800 = 71 s
# whatever the machine, so that both kills and restarts land mid-stream; requests stay
# small and one at a time, so the sender itself keeps order and every reordering seen
# comes from the tier.
BATCH_SIZE = 5
MAX_RATE = 2800
# Each run must last this long, or the kills are not mid-stream on every machine.
MIN_RUN_SECONDS = 60.0
MARKER = ".flume-tier"

# Files this driver owns in the scratch folder; flume-tier.sh kills what is listed in
# PIDS_FILE if the driver itself dies without cleaning up.
PIDS_FILE = ".pids"


class Failure(Exception):
    """A run that cannot go on; the message says why."""


def log(text):
    print(text, flush=True)


# Ports handed out so far. A probed port is free again once the probe closes, so the
# next probe may get the same one: without this, a collector's Avro port and an edge's
# HTTP port once came out equal, and the edges forwarded to an HTTP source.
HANDED_OUT = set()


def free_port():
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in HANDED_OUT:
            HANDED_OUT.add(port)
            return port


class Processes:
    """Every child process, so that all of them are stopped on any exit, and listed in
    a file the bash wrapper reads if this driver is killed."""

    def __init__(self, scratch):
        self.path = os.path.join(scratch, PIDS_FILE)
        self.live = {}

    def started(self, proc):
        self.live[proc.pid] = proc
        self._write()

    def reaped(self, proc):
        self.live.pop(proc.pid, None)
        self._write()

    def _write(self):
        with open(self.path + ".tmp", "w") as out:
            out.write("".join(f"{pid}\n" for pid in self.live))
        os.replace(self.path + ".tmp", self.path)

    def stop_all(self):
        for proc in list(self.live.values()):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in list(self.live.values()):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.reaped(proc)


class Agent:
    """One Flume agent: its configuration, folders and process. Restarting it reuses the
    same folders, so its file channel replays what it held."""

    def __init__(self, name, folder, lib, processes, conf, ready):
        self.name = name
        self.folder = folder
        self.lib = lib
        self.processes = processes
        self.ready = ready
        self.proc = None
        self.starts = 0
        self.conf_path = os.path.join(folder, "agent.conf")
        self.log_path = os.path.join(folder, "agent.log")
        self.sink = os.path.join(folder, "sink")
        for sub in ("checkpoint", "data", "sink"):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
        with open(self.conf_path, "w") as out:
            out.write(conf)
        with open(os.path.join(folder, "log4j2.properties"), "w") as out:
            out.write(LOG4J)

    def start(self):
        self.starts += 1
        with open(self.log_path, "a") as logfile:
            logfile.write(f"\n==== start {self.starts} at {time.strftime('%H:%M:%S')}\n")
            logfile.flush()
            self.proc = subprocess.Popen(
                [
                    "java",
                    "-Xmx256m",
                    "-Dfile.encoding=UTF-8",
                    "-Dlog4j.configurationFile="
                    + os.path.join(self.folder, "log4j2.properties"),
                    "-cp",
                    os.path.join(self.lib, "*"),
                    "org.apache.flume.node.Application",
                    "-n",
                    self.name,
                    "-f",
                    self.conf_path,
                    "--no-reload-conf",
                ],
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
            )
        self.processes.started(self.proc)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, limit=120.0):
        """Waits until the agent takes requests; its channel has replayed by then (Flume
        starts sources after channels)."""
        started = time.monotonic()
        while not self.ready():
            if not self.alive():
                raise Failure(f"agent {self.name} exited while starting; {self.tail()}")
            if time.monotonic() - started > limit:
                raise Failure(f"agent {self.name} did not start in {limit:.0f}s; {self.tail()}")
            time.sleep(0.2)
        return time.monotonic() - started

    def kill(self):
        """SIGKILL: no shutdown hook, no flush, no checkpoint."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.processes.reaped(self.proc)

    def tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as logfile:
                text = logfile.readlines()[-lines:]
        except OSError:
            text = []
        return "the end of its log:\n" + "".join(text)


LOG4J = """status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = %d{HH:mm:ss.SSS} %-5p [%t] %c{1}: %m%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.node.name = org.apache.flume.node
logger.node.level = info
logger.file.name = org.apache.flume.channel.file
logger.file.level = info
"""


def http_ready(port):
    def check():
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/",
            data=b"[]",
            method="POST",
            headers={"Content-Type": "application/json; charset=UTF-8"},
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    return check


def tcp_ready(port):
    def check():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return True
        except OSError:
            return False

    return check


def file_channel(prefix, folder, transaction_capacity):
    # One checkpoint and one data folder per agent, never shared: two channels on one
    # folder corrupt each other. The capacity holds a whole run, so that a full channel
    # (503) never paces the sender; the per-transaction commit does.
    return f"""{prefix}.type = file
{prefix}.checkpointDir = {folder}/checkpoint
{prefix}.dataDirs = {folder}/data
{prefix}.capacity = 500000
{prefix}.transactionCapacity = {transaction_capacity}
"""


def file_roll(prefix, folder, batch):
    return f"""{prefix}.type = file_roll
{prefix}.channel = c1
{prefix}.sink.directory = {folder}/sink
{prefix}.sink.rollInterval = 0
{prefix}.sink.serializer = header_and_text
{prefix}.sink.batchSize = {batch}
"""


# A file-channel transaction holds at most this many events; the sinks take this many at
# a time, so they keep up with the sender easily.
TRANSACTION_CAPACITY = 100


def http_agent_conf(name, folder, port):
    n = name
    return (
        f"""{n}.sources = r1
{n}.channels = c1
{n}.sinks = k1
{n}.sources.r1.type = http
{n}.sources.r1.bind = 127.0.0.1
{n}.sources.r1.port = {port}
{n}.sources.r1.channels = c1
{n}.sources.r1.interceptors = arrived
{n}.sources.r1.interceptors.arrived.type = timestamp
{n}.sources.r1.interceptors.arrived.headerName = arrived
"""
        + file_channel(f"{n}.channels.c1", folder, TRANSACTION_CAPACITY)
        + file_roll(f"{n}.sinks.k1", folder, TRANSACTION_CAPACITY)
    )


def edge_conf(name, folder, port, collector_port):
    n = name
    sinks = ""
    for sink in ("k1", "k2"):
        sinks += f"""{n}.sinks.{sink}.type = avro
{n}.sinks.{sink}.channel = c1
{n}.sinks.{sink}.hostname = 127.0.0.1
{n}.sinks.{sink}.port = {collector_port}
{n}.sinks.{sink}.batch-size = {TRANSACTION_CAPACITY}
"""
    return (
        f"""{n}.sources = r1
{n}.channels = c1
{n}.sinks = k1 k2
{n}.sinkgroups = g1
{n}.sources.r1.type = http
{n}.sources.r1.bind = 127.0.0.1
{n}.sources.r1.port = {port}
{n}.sources.r1.channels = c1
{n}.sources.r1.interceptors = arrived edge
{n}.sources.r1.interceptors.arrived.type = timestamp
{n}.sources.r1.interceptors.arrived.headerName = arrived
{n}.sources.r1.interceptors.edge.type = static
{n}.sources.r1.interceptors.edge.key = edge
{n}.sources.r1.interceptors.edge.value = {name}
"""
        + file_channel(f"{n}.channels.c1", folder, TRANSACTION_CAPACITY)
        + sinks
        + f"""{n}.sinkgroups.g1.sinks = k1 k2
{n}.sinkgroups.g1.processor.type = load_balance
{n}.sinkgroups.g1.processor.backoff = true
{n}.sinkgroups.g1.processor.selector = round_robin
# A failed sink rests 1 s, 2 s, 4 s ... up to this (default 30 s): bounded so that an
# edge tries the restarted collector again within the run.
{n}.sinkgroups.g1.processor.selector.maxTimeOut = 5000
"""
    )


def collector_conf(name, folder, port):
    n = name
    return (
        f"""{n}.sources = r1
{n}.channels = c1
{n}.sinks = k1
{n}.sources.r1.type = avro
{n}.sources.r1.bind = 127.0.0.1
{n}.sources.r1.port = {port}
{n}.sources.r1.channels = c1
{n}.sources.r1.interceptors = collected
{n}.sources.r1.interceptors.collected.type = timestamp
{n}.sources.r1.interceptors.collected.headerName = collected
"""
        + file_channel(f"{n}.channels.c1", folder, TRANSACTION_CAPACITY)
        + file_roll(f"{n}.sinks.k1", folder, TRANSACTION_CAPACITY)
    )


# One event of the header_and_text serializer: `{name=value, ...} body`. Header values
# here are ids, numbers and plain words, so ", " and "=" split them unambiguously.
LINE = re.compile(r"^\{(.*?)\} (.*)$")
BODY = re.compile(r'^\{"n":(\d+)\}$')


class Event:
    __slots__ = ("n", "id", "key", "seq", "arrived", "collected", "edge", "agent", "seen")

    def __init__(self, n, headers, agent, seen):
        self.n = n
        self.id = headers.get("id")
        self.key = headers.get("key")
        self.seq = int(headers.get("seq", "-1"))
        self.arrived = int(headers.get("arrived", "-1"))
        self.collected = headers.get("collected")
        self.edge = headers.get("edge")
        self.agent = agent
        self.seen = seen


class Sinks:
    """Reads the file_roll sinks of the final agents as they grow: complete lines only (a
    kill can leave half a line; the file channel gives that event again, whole, to the
    next incarnation's file)."""

    def __init__(self, agents):
        self.agents = agents
        self.offsets = {}
        self.partial = {}
        self.events = []
        self.bad = []
        self.seen_n = set()
        self.warmup = 0
        self.restart_clock()

    def restart_clock(self):
        """Time 0 of the measured run (after the warm-up)."""
        self.start = time.monotonic()
        # The same moment on the wall clock, which the agents' `arrived` stamps use.
        self.start_epoch_ms = time.time() * 1000
        self.per_second = []

    def files(self):
        found = []
        for agent in self.agents:
            for name in os.listdir(agent.sink):
                found.append((agent.name, os.path.join(agent.sink, name)))
        # file_roll names its files <start millis>-<counter>: creation order.
        return sorted(found, key=lambda item: file_order(item[1]))

    def poll(self):
        now = time.monotonic() - self.start
        added = 0
        for agent, path in self.files():
            offset = self.offsets.get(path, 0)
            with open(path, "rb") as sink:
                sink.seek(offset)
                chunk = sink.read()
            if not chunk:
                continue
            self.offsets[path] = offset + len(chunk)
            data = self.partial.pop(path, b"") + chunk
            lines = data.split(b"\n")
            if lines[-1]:
                self.partial[path] = lines[-1]
            for raw in lines[:-1]:
                added += self.parse(raw, agent, now)
        second = int(now)
        while len(self.per_second) <= second:
            self.per_second.append(0)
        self.per_second[second] += added
        return added

    def parse(self, raw, agent, seen):
        """Records one line; returns 1 if it is an event of the measured run."""
        text = raw.decode("utf-8", errors="replace")
        match = LINE.match(text)
        if match and f", collection={WARMUP_COLLECTION}," in f", {match.group(1)},":
            self.warmup += 1
            return 0
        body = BODY.match(match.group(2)) if match else None
        if not body:
            self.bad.append(text[:200])
            return 0
        headers = {}
        for pair in match.group(1).split(", "):
            name, _, value = pair.partition("=")
            headers[name] = value
        n = int(body.group(1))
        self.seen_n.add(n)
        self.events.append(Event(n, headers, agent, seen))
        return 1

    def delay_ms(self, event):
        """From the first agent's `arrived` stamp to this reader seeing the line (at most
        POLL_SECONDS late)."""
        return self.start_epoch_ms + event.seen * 1000 - event.arrived

    def torn(self):
        """Half lines left at the end of files whose agent was killed."""
        return sum(1 for rest in self.partial.values() if rest)


def file_order(path):
    stamp, _, counter = os.path.basename(path).partition("-")
    try:
        return (int(stamp), int(counter or 0))
    except ValueError:
        return (0, 0)


# Changes sent through the agents before the measured run, unpaced, so that the JVMs
# have compiled their hot paths: cold agents on a busy 2-core machine took 500 to 1,500
# changes/s for the first 10 to 15 s, the sender fell up to 9.5 s behind its pace, and
# its catch-up then looked like full speed. The sink reader skips them by collection.
WARMUP_CHANGES = 30_000
WARMUP_COLLECTION = "warmup"


def write_warmup(path):
    with open(path, "w") as out:
        for i in range(WARMUP_CHANGES):
            out.write(
                f'{{"collection":"{WARMUP_COLLECTION}","key":"w{i % 100}","op":"update","value":{{"w":{i}}}}}\n'
            )


def write_input(path):
    with open(path, "w") as out:
        for i in range(CHANGES):
            out.write(
                f'{{"collection":"c","key":"k{i % KEYS}","op":"update","value":{{"n":{i}}}}}\n'
            )


class Run:
    def __init__(self, args, processes, folder):
        self.args = args
        self.processes = processes
        self.folder = folder
        self.kills = []
        self.sender = None
        self.victim = None

    def warm_up(self, urls, sinks):
        """Sends the warm-up changes (round-robin, so that every agent warms) and waits
        until the final sinks have them, then starts the run's clock."""
        started = time.monotonic()
        path = os.path.join(self.folder, "warmup.jsonl")
        write_warmup(path)
        command = [
            self.args.headwater, "send", "--to", ",".join(urls), "--round-robin",
            "--batch-size", str(BATCH_SIZE), "--max-in-flight", "1",
            "--state", os.path.join(self.folder, "warmup.db"), "--fresh", "--json", path,
        ]
        with open(os.path.join(self.folder, "warmup.log"), "w") as err:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err)
            self.processes.started(proc)
            try:
                code = proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = None
            self.processes.reaped(proc)
        if code != 0:
            raise Failure(f"the warm-up send failed (exit {code}); see {self.folder}/warmup.log")
        deadline = time.monotonic() + 60
        while sinks.warmup < WARMUP_CHANGES and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            sinks.poll()
        if sinks.events or sinks.bad:
            raise Failure("lines other than the warm-up reached the sinks during the warm-up")
        log(f"  warm-up: {WARMUP_CHANGES} changes (collection {WARMUP_COLLECTION!r}, not counted) through "
            f"the agents in {time.monotonic() - started:.1f}s; {sinks.warmup} lines at the sink(s)")
        sinks.restart_clock()

    def send(self, urls):
        command = [
            self.args.headwater,
            "send",
            "--to",
            ",".join(urls),
            "--batch-size",
            str(BATCH_SIZE),
            "--max-in-flight",
            "1",
            "--max-rate",
            str(MAX_RATE),
            "--state",
            os.path.join(self.folder, "state.db"),
            "--fresh",
            "--json",
        ]
        if self.args.mode == "round-robin":
            command.append("--round-robin")
        elif self.args.mode == "by-key":
            command.append("--route-by-key")
        command.append(os.path.join(self.folder, "input.jsonl"))
        shown = " ".join(
            os.path.basename(part) if part == self.args.headwater else part for part in command
        )
        log(f"  {shown}")
        self.send_out = open(os.path.join(self.folder, "send.json"), "w")
        self.send_err = open(os.path.join(self.folder, "send.log"), "w")
        self.sender = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self.send_out, stderr=self.send_err
        )
        self.processes.started(self.sender)

    def drive(self, candidates, sinks, started):
        """Polls the sinks; at the first KILL_AT share kills the candidate whose sink grew
        most in the last seconds (with failover, the agent that takes the traffic: each
        client prefers an endpoint of its own), at the next ones the same agent again,
        and restarts it DOWN_SECONDS later each time; returns when the sender has exited
        and the sinks are quiet."""
        victim = None
        pending_kills = list(KILL_AT)
        restart_at = None
        sender_done = None
        last_growth = time.monotonic()
        while True:
            time.sleep(POLL_SECONDS)
            if sinks.poll():
                last_growth = time.monotonic()
            now = time.monotonic()
            at = now - started
            if restart_at is not None and now >= restart_at:
                victim.start()
                restart_at = None
                kill = self.kills[-1]
                kill["restarted"] = at
                log(f"  {at:6.1f}s  {victim.name} restarted on the same folders (its file channel replays)")
                # The sinks keep being read while the agent starts.
                begun = time.monotonic()
                while not victim.ready():
                    if not victim.alive():
                        raise Failure(f"agent {victim.name} exited while restarting; {victim.tail()}")
                    if time.monotonic() - begun > 120:
                        raise Failure(f"agent {victim.name} did not restart in 120s; {victim.tail()}")
                    time.sleep(POLL_SECONDS)
                    if sinks.poll():
                        last_growth = time.monotonic()
                kill["ready"] = time.monotonic() - started
                log(f"  {kill['ready']:6.1f}s  {victim.name} takes requests again "
                    f"({kill['ready'] - at:.1f}s after the restart)")
                continue
            if pending_kills and restart_at is None and len(sinks.events) >= pending_kills[0] * CHANGES:
                share = pending_kills.pop(0)
                if victim is None:
                    victim = busiest(candidates, sinks, at)
                    self.victim = victim.name
                victim.kill()
                self.kills.append({
                    "at": at,
                    "epoch_ms": int(time.time() * 1000),
                    "share": share,
                    "lines": len(sinks.events),
                    "sender_running": self.sender.poll() is None,
                })
                log(f"  {at:6.1f}s  {victim.name} killed (SIGKILL) with {len(sinks.events)} lines "
                    f"({len(sinks.events) / CHANGES:.1%}) at the sink(s)")
                restart_at = now + DOWN_SECONDS
                continue
            if sender_done is None and self.sender.poll() is not None:
                sender_done = at
                self.processes.reaped(self.sender)
                self.send_out.close()
                self.send_err.close()
                code = self.sender.returncode
                log(f"  {at:6.1f}s  headwater send exited with {code}")
                if code != 0:
                    with open(os.path.join(self.folder, "send.log"), errors="replace") as err:
                        tail = "".join(err.readlines()[-20:])
                    raise Failure(f"headwater send failed (exit {code}); the end of its log:\n{tail}")
            if sender_done is not None and restart_at is None:
                quiet = now - last_growth
                # While a change is still missing, wait longer: an edge whose Avro sinks
                # both failed pauses up to 10 s (selector backoff, then the runner's 5 s).
                needed = QUIET_SECONDS if len(sinks.seen_n) == CHANGES else MISSING_QUIET_SECONDS
                if quiet >= needed or at - sender_done > DRAIN_LIMIT_SECONDS:
                    return sender_done, at


def busiest(candidates, sinks, now, window=3.0):
    recent = {}
    for event in reversed(sinks.events):
        if event.seen < now - window:
            break
        recent[event.agent] = recent.get(event.agent, 0) + 1
    return max(candidates, key=lambda agent: recent.get(agent.name, 0))


def describe_send(folder):
    try:
        with open(os.path.join(folder, "send.json")) as summary:
            return json.loads(summary.read())
    except (OSError, ValueError):
        return {}


def missing_and_ids(events):
    """Input lines (by their body's n) that reached no final sink, and whether each id
    stands for exactly one change."""
    by_n = {}
    by_id = {}
    for event in events:
        by_n.setdefault(event.n, event.id)
        by_id.setdefault(event.id, set()).add(event.n)
    missing = [n for n in range(CHANGES) if n not in by_n]
    conflicting = [i for i, ns in by_id.items() if len(ns) > 1]
    # The same change under two ids would be a resend that lost its idempotency key.
    renamed = len(by_id) - len(by_n)
    return missing, conflicting, renamed, len(by_id)


def duplicates(events, tier):
    """Copies of one id beyond the first, classified by what differs between copies:
    - a different `arrived` (stamped by the first agent at each put): headwater sent it
      twice (a request cut by a kill has no answer, so it is resent under the same id);
    - the same `arrived` but a different `collected` (tier): the Avro hop resent it (the
      collector committed the batch, then died before the edge had the acknowledgement);
    - both the same: the sink wrote it, then the agent died before the take committed, so
      the file channel gave the same event again after the restart."""
    copies = {}
    for event in events:
        copies.setdefault(event.id, []).append(event)
    reasons = {"sender": 0, "avro": 0, "replay": 0}
    extra_lines = 0
    ids = 0
    for group in copies.values():
        if len(group) < 2:
            continue
        ids += 1
        first = group[0]
        for other in group[1:]:
            extra_lines += 1
            if other.arrived != first.arrived:
                reasons["sender"] += 1
            elif tier and other.collected != first.collected:
                reasons["avro"] += 1
            else:
                reasons["replay"] += 1
    return extra_lines, ids, reasons


def out_of_order(first):
    """first: {key: {seq: (time of first arrival, event)}}. A change is out of order when a
    later change of the same record (higher seq) arrived strictly before it; a tie (same
    time: not comparable) is counted apart. Returns the late changes' first copies, each
    with the first copy of a later change that arrived before it, the number of ties, and
    the number of records with a late change."""
    late = []
    ties = 0
    records = 0
    for seqs in first.values():
        earliest_later = None
        hit = False
        overtaker = None
        for seq in sorted(seqs, reverse=True):
            when, event = seqs[seq]
            if earliest_later is not None:
                if when > earliest_later:
                    late.append((event, overtaker))
                    hit = True
                elif when == earliest_later:
                    ties += 1
            if earliest_later is None or when < earliest_later:
                earliest_later = when
                overtaker = event
        records += hit
    return late, ties, records


def first_arrivals(events, time_of):
    first = {}
    for index, event in enumerate(events):
        seqs = first.setdefault(event.key, {})
        when = time_of(index, event)
        if event.seq not in seqs or when < seqs[event.seq][0]:
            seqs[event.seq] = (when, event)
    return first


# The rate before a kill: the median of this many seconds before it, counting only the
# seconds in which the sink was caught up.
BEFORE_SECONDS = 10
# Caught up: what the sink wrote in that second had arrived at the first agent at most
# this long before (median). Steady flow through one or two hops stays within about 2 s
# (a sink that finds its channel empty sleeps 1 s); after an outage the backlog written
# during the catch-up is 10 s old and more.
CAUGHT_UP_MS = 4000
# A kill needs this many caught-up seconds before it for a median of its own; one that
# comes while the sink is still catching up keeps the previous kill's median.
MIN_STEADY_SECONDS = 3


def caught_up_seconds(sinks):
    """For each second of the run, whether the sink was caught up. A second without
    events takes the state of the next second with events: silence before a backlog is
    part of the outage, silence before fresh events is a sink's sleep."""
    delays = {}
    for event in sinks.events:
        delays.setdefault(int(event.seen), []).append(sinks.delay_ms(event))
    length = len(sinks.per_second)
    state = [True] * length
    following = True
    for second in range(length - 1, -1, -1):
        if second in delays:
            following = statistics.median(delays[second]) <= CAUGHT_UP_MS
        state[second] = following
    return state


def throughput(per_second, caught_up, kills, stream_start):
    """For each kill, from per-second samples: the median rate in the BEFORE_SECONDS before
    it (caught-up seconds only); when the rate was first back to FULL_SPEED of that median
    after the kill (from the first whole second after the first read after it) and after
    the restart; the
    lowest second and the seconds below FULL_SPEED in between; the output missing
    meanwhile, in seconds' worth at the median rate; the catch-up peak."""
    results = []
    previous = None
    for kill in kills:
        at = int(kill["at"])
        if "restarted" not in kill:
            results.append(None)
            continue
        seconds = [s for s in range(max(stream_start + 1, at - BEFORE_SECONDS), at) if caught_up[s]]
        if len(seconds) >= MIN_STEADY_SECONDS or (previous is None and seconds):
            median = statistics.median(per_second[s] for s in seconds)
            basis = f"{len(seconds)} caught-up seconds"
        elif previous is not None:
            median = previous
            basis = "the previous kill's: the sink was still catching up"
        else:
            results.append(None)
            continue
        threshold = FULL_SPEED * median

        def first_ok(begin):
            return next((s for s in range(begin, len(per_second)) if per_second[s] >= threshold), None)

        # Lines read in the first poll after the kill were written before it.
        first = int(kill["at"] + POLL_SECONDS) + 1
        after_kill = first_ok(first)
        restarted = int(kill["restarted"])
        after_restart = first_ok(restarted)
        end = after_restart if after_restart is not None else len(per_second)
        dip = per_second[first:max(end, restarted)] or [per_second[at]]
        results.append({
            "median": median,
            "basis": basis,
            "threshold": threshold,
            "lowest": min(dip),
            "below": sum(1 for rate in dip if rate < threshold),
            "down_mean": statistics.mean(per_second[at:restarted]) if restarted > at else per_second[at],
            "lost_seconds": sum(max(0.0, median - rate) for rate in dip) / median if median else 0.0,
            "back_after_kill": None if after_kill is None else after_kill - kill["at"],
            "back_after_restart": None if after_restart is None else max(0.0, after_restart - kill["restarted"]),
            "peak_after_restart": max(per_second[restarted:restarted + 15] or [0]),
        })
        previous = median
    return results


def report(run, sinks, sender_done, drained_at, tier, started):
    events = sinks.events
    ok = True
    summary = describe_send(run.folder)
    log(f"  headwater send: {summary.get('requests', '?')} requests, {summary.get('retries', '?')} retries, "
        f"{summary.get('elapsed_ms', 0) / 1000:.1f}s, {summary.get('events_per_sec', 0):.0f} events/s")
    files = len(sinks.offsets)
    log(f"  sinks quiet {drained_at - sender_done:.1f}s after send exited: {len(events)} lines in {files} files"
        + (f", {sinks.torn()} half line(s) left by a kill (the event came again whole)" if sinks.torn() else ""))
    if sinks.bad:
        ok = False
        log(f"  FAIL: {len(sinks.bad)} sink line(s) not in the header_and_text form, e.g. {sinks.bad[0]!r}")

    missing, conflicting, renamed, distinct = missing_and_ids(events)
    log(f"  ids missing at the final sink(s): {len(missing)} of {CHANGES}"
        + (f" (first: line {missing[0] + 1})" if missing else " (every input line reached a final sink)")
        + f"; {distinct} distinct ids")
    if missing:
        ok = False
    if conflicting or renamed:
        ok = False
        log(f"  FAIL: {len(conflicting)} id(s) carry two changes; {renamed} change(s) arrived under two ids")

    extra, dup_ids, reasons = duplicates(events, tier)
    log(f"  duplicates: {extra} extra line(s) for {dup_ids} id(s) ({extra / CHANGES:.2%} of the changes):")
    log(f"    {reasons['sender']} sent twice by headwater (a request cut by the kill had no answer, "
        "so it was resent under the same id)")
    if tier:
        log(f"    {reasons['avro']} resent by an edge's Avro sink (the collector committed the batch, then "
            "died before the edge had the acknowledgement)")
    log(f"    {reasons['replay']} replayed by a file channel (the sink wrote the event, the agent died "
        "before the take committed, so the restarted channel gave it again)")
    log("    the ids make every copy harmless: a consumer keeps the first of each id")

    first_kill = run.kills[0]["at"] if run.kills else float("inf")
    if tier:
        late, ties, records = out_of_order(first_arrivals(events, lambda index, event: index))
        steady = sum(1 for event, _ in late if event.seen < first_kill)
        across = sum(1 for event, overtaker in late if overtaker.edge != event.edge)
        log(f"  order per record at the collector's sink (first arrival of each seq per key): "
            f"{len(late)} change(s) of {records} record(s) arrived after a later change of the same record")
        log(f"    {steady} before the first kill, {len(late) - steady} after it; {across} overtaken by a later "
            "change that came through the other edge (each edge forwards on its own schedule: after an "
            "outage, the one whose sinks wake first delivers its newer changes ahead of the other's older "
            "ones)")
    else:
        late, ties, records = out_of_order(first_arrivals(events, lambda index, event: event.arrived))
        log("  order per record across the three sinks, merged by the `arrived` header (order across "
            "independent agents is by arrival millisecond at the agent):")
        log(f"    {len(late)} change(s) of {records} record(s) arrived after a later change of the same "
            f"record; {ties} in the same millisecond as a later one (not comparable)")
        late, ties, records = out_of_order(first_arrivals(events, lambda index, event: event.seen))
        victim = run.victim
        held = sum(
            1
            for event, _ in late
            if event.agent == victim
            and any(event.arrived < kill["epoch_ms"] and event.seen >= kill["at"] for kill in run.kills)
        )
        log(f"  order per record by when a sink wrote them (the sinks are read every {POLL_SECONDS}s): "
            f"{len(late)} change(s) of {records} record(s) reached a sink after a later change of the same "
            f"record ({ties} within one read: not comparable)")
        log(f"    {held} of them sat in {victim}'s file channel across a kill (they arrived before it and were "
            f"written after the restart, while later changes went through the other agents); "
            f"{len(late) - held} come from the sinks writing in bursts of their own (a file_roll sink that "
            "finds its channel empty sleeps 1 to 5 s)")

    delays = sorted(sinks.delay_ms(event) for event in events)
    if delays:
        log(f"  delay from the first agent to the final sink (first copies and duplicates): median "
            f"{delays[len(delays) // 2] / 1000:.1f}s, 99th percentile {delays[len(delays) * 99 // 100] / 1000:.1f}s, "
            f"longest {delays[-1] / 1000:.1f}s")

    stream_start = next((s for s, rate in enumerate(sinks.per_second) if rate), 0)
    log(f"  throughput at the final sink(s), events/s sampled each second; full speed = {FULL_SPEED:.0%} of the "
        "median before the kill:")
    figures_per_kill = throughput(sinks.per_second, caught_up_seconds(sinks), run.kills, stream_start)
    for index, (kill, figures) in enumerate(zip(run.kills, figures_per_kill)):
        if figures is None:
            log(f"    kill {index + 1} at {kill['at']:.1f}s: no samples before it, or never restarted")
            continue
        median = figures["median"]
        log(f"    kill {index + 1} at {kill['at']:.1f}s: median before {median:.0f}/s ({figures['basis']}); "
            f"while {run.victim} was down ({DOWN_SECONDS:.0f} s) {figures['down_mean']:.0f}/s on average "
            f"({figures['down_mean'] / median:.0%})")
        after_kill = figures["back_after_kill"]
        log(f"      dip: lowest second {figures['lowest']:.0f}/s ({figures['lowest'] / median:.0%}), "
            f"{figures['below']} second(s) below full speed ({figures['threshold']:.0f}/s); first back to full "
            "speed " + ("never" if after_kill is None else f"{after_kill:.1f}s after the kill")
            + f"; output missing about {figures['lost_seconds']:.1f}s worth at the median rate")
        after_restart = figures["back_after_restart"]
        log(f"      restarted at {kill['restarted']:.1f}s, takes requests at {kill.get('ready', float('nan')):.1f}s; "
            + ("not back to full speed before the run ended" if after_restart is None
               else f"full speed {after_restart:.1f}s after the restart")
            + f"; peak in the 15 s after the restart {figures['peak_after_restart']}/s")
    rates = sinks.per_second
    log("  per-second rates at the sink(s):")
    for row in range(0, len(rates), 15):
        log("    " + f"{row:3d}s: " + " ".join(f"{rate:5d}" for rate in rates[row:row + 15]))

    for index, kill in enumerate(run.kills):
        if not kill["sender_running"]:
            ok = False
            log(f"  FAIL: kill {index + 1} came after headwater send had finished: not mid-stream")
        elif kill.get("restarted", 0) > sender_done:
            log(f"  note: restart {index + 1} came after headwater send had finished")
    if len(run.kills) < len(KILL_AT):
        ok = False
        log(f"  FAIL: only {len(run.kills)} of {len(KILL_AT)} kills happened (the sinks never held "
            f"{KILL_AT[len(run.kills)]:.0%} of the changes)")
    if sender_done < MIN_RUN_SECONDS:
        ok = False
        log(f"  FAIL: the sender took {sender_done:.0f}s, under {MIN_RUN_SECONDS:.0f}s: the kills may not be "
            "mid-stream (is --max-rate honoured?)")
    log(f"  run time {time.monotonic() - started:.0f}s: " + ("PASS" if ok else "FAIL"))
    return ok


def prepare(scratch, name):
    folder = os.path.join(scratch, name)
    if os.path.exists(folder):
        if not os.path.exists(os.path.join(folder, MARKER)):
            raise Failure(f"{folder} exists and was not made by this script; choose another scratch folder")
        shutil.rmtree(folder)
    os.makedirs(folder)
    open(os.path.join(folder, MARKER), "w").close()
    return folder


def side_by_side(args, processes):
    folder = prepare(args.scratch, "side-by-side")
    run = Run(args, processes, folder)
    log(f"\n== three HTTP-source agents side by side ({args.mode}); the busiest is killed twice")
    write_input(os.path.join(folder, "input.jsonl"))
    agents = []
    for name in ("A", "B", "C"):
        port = free_port()
        agent_folder = os.path.join(folder, name)
        os.makedirs(agent_folder)
        agent = Agent(name, agent_folder, args.lib, processes,
                      http_agent_conf(name, agent_folder, port), http_ready(port))
        agent.url = f"http://127.0.0.1:{port}/"
        agents.append(agent)
    started = time.monotonic()
    for agent in agents:
        agent.start()
    for agent in agents:
        agent.wait_ready()
    log(f"  agents (HTTP source -> file channel -> file_roll) up after {time.monotonic() - started:.1f}s: "
        + ", ".join(f"{agent.name} {agent.url}" for agent in agents))
    sinks = Sinks(agents)
    run.warm_up([agent.url for agent in agents], sinks)
    run.send([agent.url for agent in agents])
    sender_done, drained_at = run.drive(agents, sinks, sinks.start)
    ok = report(run, sinks, sender_done, drained_at, tier=False, started=started)
    for agent in agents:
        stop(agent, processes)
    return ok


def tier(args, processes):
    folder = prepare(args.scratch, "tier")
    run = Run(args, processes, folder)
    log(f"\n== a two-level tier: two edges -> one collector ({args.mode} over the edges); "
        "the collector is killed twice")
    write_input(os.path.join(folder, "input.jsonl"))
    collector_port = free_port()
    collector_folder = os.path.join(folder, "collector")
    os.makedirs(collector_folder)
    collector = Agent("collector", collector_folder, args.lib, processes,
                      collector_conf("collector", collector_folder, collector_port),
                      tcp_ready(collector_port))
    edges = []
    for name in ("edge1", "edge2"):
        port = free_port()
        edge_folder = os.path.join(folder, name)
        os.makedirs(edge_folder)
        edge = Agent(name, edge_folder, args.lib, processes,
                     edge_conf(name, edge_folder, port, collector_port), http_ready(port))
        edge.url = f"http://127.0.0.1:{port}/"
        edges.append(edge)
    started = time.monotonic()
    for agent in [collector] + edges:
        agent.start()
    for agent in [collector] + edges:
        agent.wait_ready()
    log(f"  collector (Avro source 127.0.0.1:{collector_port} -> file channel -> file_roll) and edges "
        "(HTTP -> file channel -> two Avro sinks, load_balance, backoff, round_robin) up after "
        f"{time.monotonic() - started:.1f}s: " + ", ".join(f"{edge.name} {edge.url}" for edge in edges))
    sinks = Sinks([collector])
    run.warm_up([edge.url for edge in edges], sinks)
    run.send([edge.url for edge in edges])
    sender_done, drained_at = run.drive([collector], sinks, sinks.start)
    ok = report(run, sinks, sender_done, drained_at, tier=True, started=started)
    for agent in edges + [collector]:
        stop(agent, processes)
    return ok


def stop(agent, processes):
    if agent.alive():
        agent.proc.terminate()
        try:
            agent.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            agent.proc.kill()
            agent.proc.wait()
    if agent.proc is not None:
        processes.reaped(agent.proc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--headwater", required=True, help="the headwater binary (release build)")
    parser.add_argument("--scratch", required=True, help="a folder for agents, sinks and inputs")
    parser.add_argument("--lib", required=True, help="the folder of Flume 1.11.0's jars")
    parser.add_argument("--mode", default="round-robin", choices=["round-robin", "failover", "by-key"],
                        help="how headwater spreads over the agents")
    parser.add_argument("--runs", default="side-by-side,tier",
                        help="comma-separated: side-by-side, tier")
    args = parser.parse_args()
    runs = [run.strip() for run in args.runs.split(",") if run.strip()]
    unknown = [run for run in runs if run not in ("side-by-side", "tier")]
    if unknown or not runs:
        parser.error(f"--runs: unknown run(s) {', '.join(unknown) or '(none)'}; use side-by-side, tier")
    if not os.access(args.headwater, os.X_OK):
        parser.error(f"--headwater {args.headwater}: not an executable file")
    if not os.path.isdir(args.lib):
        parser.error(f"--lib {args.lib}: not a folder")
    os.makedirs(args.scratch, exist_ok=True)

    processes = Processes(args.scratch)
    # SIGTERM and SIGHUP end the driver the way Ctrl-C does, through the cleanup below.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, frame: sys.exit(128 + number))
    ok = True
    began = time.monotonic()
    try:
        for name in runs:
            ok &= {"side-by-side": side_by_side, "tier": tier}[name](args, processes)
    except Failure as failure:
        log(f"FAIL: {failure}")
        ok = False
    except KeyboardInterrupt:
        log("interrupted")
        ok = False
    finally:
        processes.stop_all()
    log(f"\nall runs: {time.monotonic() - began:.0f}s, " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
