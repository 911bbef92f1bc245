#!/usr/bin/env python3
"""Where a Chromium trace spends its time: self time per slice name and thread.

Reads a Perfetto protobuf trace as Chromium writes it with --trace-startup (no
trace_processor needed: it parses the few TracePacket fields it uses) and prints, for
the busiest threads, the self time of each slice name, within the window from the first
to the last slice named by --window (by default IndexedDB's getAll and delete-range
operations, which bracket a sync).

Taking a trace of the browser tests: put a webdriver.json next to the crate's
Cargo.toml (wasm-bindgen-test-runner passes it to chromedriver), for example

    {"goog:chromeOptions": {"args": [
        "--trace-startup=toplevel,IndexedDB,mojom,ipc,loading,net",
        "--trace-startup-file=/tmp/trace.pftrace", "--trace-startup-duration=8"]}}

and run a test whose work falls inside those seconds (and that keeps the page open until
they are over, or the file is never written). Then:

    python3 scripts/trace-slices.py /tmp/trace.pftrace
"""
import argparse
import collections


def varint(data, i):
    value, shift = 0, 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def fields(data, start, end):
    """(field number, value) pairs of one message: ints, or (start, end) for bytes."""
    i = start
    while i < end:
        key, i = varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(data, i)
        elif wire == 1:
            value, i = int.from_bytes(data[i:i + 8], "little"), i + 8
        elif wire == 2:
            length, i = varint(data, i)
            value, i = (i, i + length), i + length
        elif wire == 5:
            value, i = int.from_bytes(data[i:i + 4], "little"), i + 4
        else:
            raise ValueError(f"wire type {wire} at {i}")
        yield number, value


# TracePacket, TrackEvent, InternedData, TrackDescriptor field numbers (perfetto protos).
PACKET, TIMESTAMP, CLOCK, SEQUENCE, FLAGS = 1, 8, 58, 10, 13
TRACK_EVENT, INTERNED, DEFAULTS, DESCRIPTOR, CLOCK_SNAPSHOT = 11, 12, 59, 60, 6
INCREMENTAL_CLOCK = 64  # Chromium's: microsecond deltas within a sequence
BEGIN, END = 1, 2


def slices(data):
    """Every matched begin/end pair: (thread name, tid, name, start ns, duration ns, self ns)."""
    text = lambda span: data[span[0]:span[1]].decode("utf-8", "replace")
    sub = lambda span: fields(data, *span)
    threads = {}
    sequences = collections.defaultdict(lambda: {"names": {}, "ts": 0, "clock": None, "track": None})
    stacks = collections.defaultdict(list)
    for number, span in fields(data, 0, len(data)):
        if number != PACKET:
            continue
        packet = dict(sub(span))
        state = sequences[packet.get(SEQUENCE, 0)]
        if packet.get(FLAGS, 0) & 1:
            state["names"] = {}
        for key in [k for k, _ in sub(span) if k == CLOCK_SNAPSHOT][:1]:
            for field, clock in sub(packet[key]):
                clock = dict(sub(clock)) if field == 1 else {}
                if clock.get(1) == INCREMENTAL_CLOCK:
                    state["ts"] = clock.get(2, 0)
        if DEFAULTS in packet:
            for field, value in sub(packet[DEFAULTS]):
                if field == 58:
                    state["clock"] = value
                elif field == 11:
                    state["track"] = dict(sub(value)).get(11, state["track"])
        if INTERNED in packet:
            for field, value in sub(packet[INTERNED]):
                if field == 2:
                    name = dict(sub(value))
                    state["names"][name.get(1)] = text(name[2]) if 2 in name else "?"
        if DESCRIPTOR in packet:
            descriptor = dict(sub(packet[DESCRIPTOR]))
            if 4 in descriptor:
                thread = dict(sub(descriptor[4]))
                threads[descriptor.get(1)] = (text(thread[5]) if 5 in thread else "?", thread.get(2))
        if TIMESTAMP not in packet or TRACK_EVENT not in packet:
            continue
        if packet.get(CLOCK, state["clock"]) == INCREMENTAL_CLOCK:
            state["ts"] += packet[TIMESTAMP]
            ts = state["ts"] * 1000
        else:
            ts = packet[TIMESTAMP]
        kind, name, track = None, None, state["track"]
        for field, value in sub(packet[TRACK_EVENT]):
            if field == 9:
                kind = value
            elif field == 10:
                name = state["names"].get(value, f"iid {value}")
            elif field == 23:
                name = text(value)
            elif field == 11:
                track = value
        stack = stacks[(track, packet.get(SEQUENCE, 0))]
        if kind == BEGIN:
            stack.append([name, ts, 0])
        elif kind == END and stack:
            name, start, children = stack.pop()
            if stack:
                stack[-1][2] += ts - start
            thread = threads.get(track, (f"track {track}", None))
            yield thread[0], thread[1], name, start, ts - start, ts - start - children


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trace")
    parser.add_argument("--window", nargs="*", default=["Database::GetAllOperation", "Database::DeleteRangeOperation"])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--names", type=int, default=15)
    args = parser.parse_args()
    data = open(args.trace, "rb").read()
    found = list(slices(data))
    marks = [start for _, _, name, start, _, _ in found if name in args.window]
    low, high = (min(marks), max(marks)) if marks else (0, float("inf"))
    if marks:
        print(f"window: {(high - low) / 1e6:.0f} ms")
    own = collections.defaultdict(collections.Counter)
    count = collections.defaultdict(collections.Counter)
    for thread, tid, name, start, _, self_ns in found:
        if low <= start <= high:
            # Thread pool workers take turns running IndexedDB's tasks: one row for all.
            key = thread if thread.startswith("ThreadPool") else f"{thread} {tid}"
            own[key][name] += self_ns
            count[key][name] += 1
    for key in sorted(own, key=lambda k: -sum(own[k].values()))[: args.threads]:
        print(f"{key}: {sum(own[key].values()) / 1e6:.0f} ms")
        for name, ns in own[key].most_common(args.names):
            print(f"  {ns / 1e6:8.1f} ms {count[key][name]:7d}x  {name}")


if __name__ == "__main__":
    main()
