#!/usr/bin/env python3
"""Runs every shell command that README.md and docs/cli.md show, as they stand.

    python3 scripts/doc-commands.py INSTALL_BIN SCRATCH

INSTALL_BIN is the folder `cargo install --path crates/headwater-cli --root ...` filled
(scripts/test.sh's install step), put first on PATH so that `headwater ...` lines run
the installed command; `cargo run --release -p headwater-cli -- ...` lines run through
cargo, as a reader would. Placeholders are filled in: URL (and the README's
http://flume-host:5140/) with a mock Flume's address, FILE (and changes.jsonl) with a
small input of valid changes, STATE and PATH with a state that holds two dead letters
(seqs 21 and 34, set aside by a mock started with --refuse-containing). `mock-flume`
lines are servers: each is started, must print its URL and take a request, and is then
stopped with SIGTERM. Every other line must exit 0.

A line this script does not know how to run fails it, unless NOT_RUN below names it
with the reason: a page cannot gain a command that no test runs.
"""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

PAGES = ["README.md", "docs/cli.md"]

# Commands shown but not run here, and why.
NOT_RUN = {
    "bash scripts/test.sh": "the test suite itself: this script runs inside it",
    "cargo install --locked --path crates/headwater-cli": (
        "scripts/test.sh runs it with --root into a scratch folder (its install step), "
        "which is the headwater this script runs"
    ),
}

PLACEHOLDERS = {"URL", "FILE", "STATE", "PATH"}


def commands(page):
    """The command lines of the page's sh blocks, comments stripped, in order."""
    text = open(page, encoding="utf-8").read()
    found = []
    for block in re.findall(r"```(?:sh|bash|shell)\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if line:
                found.append(line)
    return found


def fail(message):
    print(f"doc-commands: {message}", file=sys.stderr)
    sys.exit(1)


def start_mock(headwater, *args):
    """A mock Flume on a free port: (process, url)."""
    process = subprocess.Popen(
        [headwater, "mock-flume", "--bind", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        fail(f"the mock Flume did not print its URL (got {url!r})")
    return process, url


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        fail("a mock Flume did not stop within 20 s of SIGTERM")


def post_empty_batch(url):
    request = urllib.request.Request(
        url, data=b"[]", headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


def change(n, value):
    return (
        f'{{"collection":"todos","key":"{n}","op":"insert","value":{{"title":"{value}"}}}}\n'
    )


def main():
    if len(sys.argv) != 3:
        fail("usage: doc-commands.py INSTALL_BIN SCRATCH")
    install_bin, scratch = (os.path.abspath(arg) for arg in sys.argv[1:])
    headwater = os.path.join(install_bin, "headwater")
    if not os.access(headwater, os.X_OK):
        fail(f"no headwater command in {install_bin}")
    os.makedirs(scratch, exist_ok=True)
    env = dict(os.environ, PATH=install_bin + os.pathsep + os.environ["PATH"])

    clean = os.path.join(scratch, "changes.jsonl")
    with open(clean, "w", encoding="utf-8") as out:
        out.writelines(change(n, f"todo {n}") for n in range(1, 41))
    # Two poison changes, at seqs 21 and 34 (the seqs docs/cli.md requeues).
    poisoned = os.path.join(scratch, "poisoned.jsonl")
    with open(poisoned, "w", encoding="utf-8") as out:
        out.writelines(
            change(n, "POISON" if n in (21, 34) else f"todo {n}") for n in range(1, 41)
        )
    flume, url = start_mock(headwater)
    strict, strict_url = start_mock(headwater, "--refuse-containing", "POISON")
    try:
        state = os.path.join(scratch, "refused.state")
        sent = subprocess.run(
            [headwater, "send", "--to", strict_url, "--state", state, poisoned],
            capture_output=True,
            text=True,
        )
        if sent.returncode != 1 or "2 dead-lettered" not in sent.stderr + sent.stdout:
            fail(
                "sending two poison changes to a mock that refuses them should exit 1 with "
                f"2 dead-lettered; it exited {sent.returncode}:\n{sent.stderr}"
            )
        fills = {
            "URL": url,
            "http://flume-host:5140/": url,
            "FILE": clean,
            "changes.jsonl": clean,
            "STATE": state,
            "PATH": state,
        }
        seen = set()
        ran = 0
        for page in PAGES:
            for line in commands(page):
                if line in seen:
                    continue
                seen.add(line)
                if line in NOT_RUN:
                    print(f"not run ({page}): {line}: {NOT_RUN[line]}")
                    continue
                if not (line.startswith("headwater ") or line.startswith(
                    "cargo run --release -p headwater-cli -- "
                )):
                    fail(
                        f"{page} shows `{line}`, which this script cannot run: teach it "
                        "how, or add it to NOT_RUN with the reason"
                    )
                words = [fills.get(word, word) for word in line.split()]
                unknown = [word for word in words if word in PLACEHOLDERS]
                if unknown:
                    fail(f"{page}: no value for {unknown} in `{line}`")
                run(page, line, words, env)
                ran += 1
        print(f"ran {ran} commands from {', '.join(PAGES)}")
    finally:
        stop(flume)
        stop(strict)


def run(page, line, words, env):
    print(f"$ {line}", flush=True)
    if "mock-flume" in words:
        # A server: it must come up, answer, and stop cleanly on SIGTERM.
        server = subprocess.Popen(
            words, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        url = server.stdout.readline().strip()
        if not url.startswith("http://"):
            server.kill()
            fail(f"{page}: `{line}` did not print its URL: {server.stderr.read()}")
        status = post_empty_batch(url)
        code = stop(server)
        if status != 200 or code != 0:
            fail(f"{page}: `{line}` answered {status} to [] and exited {code}")
        return
    started = time.monotonic()
    result = subprocess.run(words, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        fail(
            f"{page}: `{line}` exited {result.returncode}:\n{result.stdout[-2000:]}"
            f"\n{result.stderr[-2000:]}"
        )
    if words[-1] == "list" and "dead-letters" in words:
        listed = [row.split("\t")[0] for row in result.stdout.splitlines()]
        if listed != ["21", "34"]:
            fail(f"{page}: `{line}` should list seqs 21 and 34, listed:\n{result.stdout}")
    print(f"  exit 0 in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
