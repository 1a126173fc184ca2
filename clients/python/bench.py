#!/usr/bin/env python3
"""Send and receive rates of the Python client beside the Go client's, in
one run against one broker.

    go build -o /tmp/postbox ./cmd/postbox
    python3 clients/python/bench.py --postbox /tmp/postbox

starts ``postbox serve --memory`` on a temporary socket (or uses
``--socket``), runs ``postbox bench --use-socket -o json`` there for the Go
client's figure (1 sender, 1 receiver, acks on), then the same shapes with
this client, and prints each Python row with its ratio to the Go row of
the same size. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import postbox  # noqa: E402


def send_rate(c: postbox.Client, box: str, size: int, seconds: float, batch: int, window: int) -> float:
    """Messages per second into an unbounded mailbox, ``window`` SENDs in
    flight, ``batch`` messages per SEND."""
    mb = c.mailbox(box)
    body = bytes(size)
    msgs = [body] * batch
    inflight: list = []
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        for _ in range(64):
            inflight.append(mb.send_batch_async(msgs) if batch > 1 else mb.send_async(body))
            n += batch
            if len(inflight) >= window:
                inflight.pop(0).result()
    for p in inflight:
        p.result()
    return n / (time.perf_counter() - t0)


def receive_rate(c: postbox.Client, box: str, count: int, prefetch: int) -> float:
    """Messages per second out of a mailbox holding ``count``: one CONSUME,
    leases acked in ranges (ACK with NOREPLY every 256)."""
    mb = c.mailbox(box)
    leases = []
    n = 0
    t0 = time.perf_counter()
    with mb.consume(prefetch=prefetch) as cons:
        for m in cons:
            leases.append(m.lease)
            n += 1
            if len(leases) >= 256:
                c.ack(leases, noreply=True)
                leases.clear()
            if n == count:
                break
    if leases:
        c.ack(leases)
    c.ping()
    return n / (time.perf_counter() - t0)


def _sender_process(sock: str, box: str, size: int, batch: int, stop) -> None:
    c = postbox.connect(sock, name="bench.py sender")
    mb = c.mailbox(box)
    msgs = [bytes(size)] * batch
    inflight = []
    while not stop.is_set():
        inflight.append(mb.send_batch_async(msgs))
        if len(inflight) >= max(1, 1024 // batch):
            inflight.pop(0).result()
    for p in inflight:
        p.result()
    c.close()


def pair_rate(sock: str, box: str, size: int, seconds: float, batch: int) -> float:
    """One sender and one receiver at once, acks on: the shape of the Go
    row. The sender is another process (its own interpreter, as a real
    sender would be), so the two do not share one GIL. Messages received
    per second."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    stop = ctx.Event()
    sender = ctx.Process(target=_sender_process, args=(sock, box, size, batch, stop))
    rc = postbox.connect(sock, name="bench.py receiver")
    cons = rc.mailbox(box).consume(prefetch=1024)
    got = 0
    leases = []
    sender.start()
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        try:
            m = cons.get(0.5)
        except TimeoutError:
            continue
        got += 1
        leases.append(m.lease)
        if len(leases) >= 256:
            rc.ack(leases, noreply=True)
            leases.clear()
    elapsed = time.perf_counter() - t0
    stop.set()
    sender.join(30)
    cons.close()
    if leases:
        rc.ack(leases, noreply=True)
    rc.close()
    return got / elapsed


def go_rows(postbox_bin: str, sock: str, seconds: float) -> dict[int, float]:
    out = subprocess.run([postbox_bin, "bench", "--use-socket", "--socket", sock, "-o", "json",
                          "--duration", f"{seconds}s", "--samples", "2000"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    rows = {}
    for line in out.splitlines():
        r = json.loads(line)
        if r["name"].startswith("mailbox throughput"):
            rows[r["size"]] = r["msgs_per_sec"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postbox", default=shutil.which("postbox") or "", help="the postbox binary (serve and the Go bench)")
    ap.add_argument("--socket", default="", help="use the broker at this socket instead of starting one")
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per figure")
    args = ap.parse_args()

    tmp = None
    serve = None
    sock = args.socket
    if not sock:
        if not args.postbox:
            ap.error("need --postbox (to start a broker) or --socket")
        tmp = tempfile.mkdtemp(prefix="pbbench")
        sock = os.path.join(tmp, "run", "postbox.sock")
        serve = subprocess.Popen([args.postbox, "serve", "--memory", "--socket", sock],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        time.sleep(0.1)
    try:
        go = go_rows(args.postbox, sock, args.duration) if args.postbox else {}
        c = postbox.connect(sock, name="bench.py")
        rows = []
        for size in (64, 4096):
            for batch, label in ((1, "1 per SEND, 1024 in flight"), (256, "256 per SEND, 4 in flight")):
                box = f"bench.py.send.{size}.{batch}"
                c.create(box)
                r = send_rate(c, box, size, args.duration, batch, 1024 if batch == 1 else 4)
                rows.append((f"python send ({label})", size, r))
                if batch == 256:
                    depth = c.stat(box).depth
                    rows.append(("python receive (CONSUME prefetch 1024, acks in ranges)", size,
                                 receive_rate(c, box, depth, 1024)))
                c.destroy(box)
            box = f"bench.py.pair.{size}"
            c.create(box)
            rows.append(("python 1 sender + 1 receiver processes, acks on (256/SEND)", size,
                         pair_rate(sock, box, size, args.duration, 256)))
            c.destroy(box)
        c.close()
        print(f"{'figure':58} {'size':>5} {'msgs/s':>10} {'Go msgs/s':>10} {'ratio':>6}")
        for size, r in sorted(go.items()):
            print(f"{'go 1 sender + 1 receiver, acks on (postbox bench)':58} {size:5d} {r:10.0f} {r:10.0f} {1:6.2f}")
        for name, size, r in rows:
            g = go.get(size)
            ratio = f"{r / g:6.2f}" if g else "     -"
            gs = f"{g:10.0f}" if g else "         -"
            print(f"{name:58} {size:5d} {r:10.0f} {gs} {ratio}")
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(10)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
