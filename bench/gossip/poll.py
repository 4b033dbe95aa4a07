#!/usr/bin/env python3
"""The observer for bench/gossip/pool.sh: watches a pool of cairn agents (HTTP API) or serf agents (serf's
msgpack RPC) and times one step of the experiment. One long-lived connection per agent (HTTP keep-alive for
cairn, one RPC session for serf), one request per agent that is not done yet per tick (TICK_MS, 50 ms), so
polling costs the agents about the same on both sides and far less than a curl or `serf members` process per
agent per tick would.

    poll.py KIND ADDRS join  T0 N            every agent lists N alive members; T0 = epoch seconds of the last start
    poll.py KIND ADDRS event NAME            fire NAME from the first agent; every agent has received it
    poll.py KIND ADDRS fail  PID NODE        SIGKILL PID; every agent in ADDRS lists NODE failed

KIND is cairn or serf; ADDRS is a comma-separated list of ip:port (cairn: HTTP; serf: RPC). Prints one line:
`<ms until all> <median ms over the agents>` or `timeout <done>/<agents>`. Exits 0 either way (the caller
reports a timeout as a failed figure); exits 2 on a usage or protocol error.
"""

import http.client
import json
import os
import select
import signal
import socket
import struct
import sys
import time

TICK = float(os.environ.get("TICK_MS", "50")) / 1000
TIMEOUT = float(os.environ.get("STEP_TIMEOUT", "60"))


# --- a minimal msgpack codec (what serf's RPC uses) ---

class Incomplete(Exception):
    pass


def pack(obj, out):
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif isinstance(obj, int):
        if 0 <= obj < 128:
            out.append(obj)
        elif 0 <= obj < 1 << 8:
            out += b"\xcc" + struct.pack(">B", obj)
        elif 0 <= obj < 1 << 16:
            out += b"\xcd" + struct.pack(">H", obj)
        elif 0 <= obj < 1 << 32:
            out += b"\xce" + struct.pack(">I", obj)
        elif obj >= 0:
            out += b"\xcf" + struct.pack(">Q", obj)
        else:
            out += b"\xd3" + struct.pack(">q", obj)
    elif isinstance(obj, (str, bytes)):
        # Raw/str types only (fixstr, str16): understood by old and new msgpack decoders alike.
        raw = obj.encode() if isinstance(obj, str) else obj
        if len(raw) < 32:
            out.append(0xA0 | len(raw))
        else:
            out += b"\xda" + struct.pack(">H", len(raw))
        out += raw
    elif isinstance(obj, dict):
        if len(obj) < 16:
            out.append(0x80 | len(obj))
        else:
            out += b"\xde" + struct.pack(">H", len(obj))
        for k, v in obj.items():
            pack(k, out)
            pack(v, out)
    elif isinstance(obj, (list, tuple)):
        if len(obj) < 16:
            out.append(0x90 | len(obj))
        else:
            out += b"\xdc" + struct.pack(">H", len(obj))
        for v in obj:
            pack(v, out)
    else:
        raise TypeError(f"cannot pack {type(obj)}")
    return out


def unpack(buf, pos):
    """Decodes one value at pos; returns (value, next pos) or raises Incomplete."""

    def take(n):
        nonlocal pos
        if pos + n > len(buf):
            raise Incomplete()
        b = buf[pos:pos + n]
        pos += n
        return b

    def raw(n):
        b = bytes(take(n))
        try:
            return b.decode()
        except UnicodeDecodeError:
            return b

    def seq(n):
        nonlocal pos
        items = []
        for _ in range(n):
            v, pos = unpack(buf, pos)
            items.append(v)
        return items

    def mapping(n):
        nonlocal pos
        d = {}
        for _ in range(n):
            k, pos = unpack(buf, pos)
            v, pos = unpack(buf, pos)
            d[k] = v
        return d

    t = take(1)[0]
    if t < 0x80:
        return t, pos
    if t >= 0xE0:
        return t - 0x100, pos
    if 0x80 <= t <= 0x8F:
        return mapping(t & 0x0F), pos
    if 0x90 <= t <= 0x9F:
        return seq(t & 0x0F), pos
    if 0xA0 <= t <= 0xBF:
        return raw(t & 0x1F), pos
    simple = {0xC0: None, 0xC2: False, 0xC3: True}
    if t in simple:
        return simple[t], pos
    fixed = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",
             0xCA: ">f", 0xCB: ">d"}
    if t in fixed:
        fmt = fixed[t]
        return struct.unpack(fmt, take(struct.calcsize(fmt)))[0], pos
    lens = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I", 0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}
    if t in lens:
        n = struct.unpack(lens[t], take(struct.calcsize(lens[t])))[0]
        return (raw(n) if t >= 0xD9 else bytes(take(n))), pos
    if t in (0xDC, 0xDD):
        n = struct.unpack(">H" if t == 0xDC else ">I", take(2 if t == 0xDC else 4))[0]
        return seq(n), pos
    if t in (0xDE, 0xDF):
        n = struct.unpack(">H" if t == 0xDE else ">I", take(2 if t == 0xDE else 4))[0]
        return mapping(n), pos
    ext = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
    if t in ext:
        take(1 + ext[t])
        return None, pos
    raise ValueError(f"msgpack type 0x{t:02x} not handled")


# --- agents ---

class CairnAgent:
    def __init__(self, addr):
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)
        self.conn = None

    def get(self, path, method="GET", body=None):
        """The decoded JSON answer, or None when the agent does not answer (yet)."""
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
            self.conn.request(method, path, body=body)
            resp = self.conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                return None
            return json.loads(data)
        except (OSError, http.client.HTTPException, ValueError):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None

    def members(self):
        """[(name, status)] with status alive/leaving/left/failed, or None."""
        ms = self.get("/v1/agent/members")
        if ms is None:
            return None
        names = {1: "alive", 2: "leaving", 3: "left", 4: "failed"}
        return [(m["Name"], names.get(m["Status"], str(m["Status"]))) for m in ms]

    def subscribe(self, name):
        pass

    def has_event(self, name):
        evs = self.get(f"/v1/event/list?name={name}")
        return bool(evs) and any(e.get("Name") == name for e in evs)

    def fire(self, name):
        if self.get(f"/v1/event/fire/{name}", method="PUT", body=b"bench") is None:
            sys.exit(f"poll.py: firing {name} on {self.host}:{self.port} failed")


class SerfRpc:
    """One serf RPC session: handshake, then requests answered in order (or a stream of records)."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=2)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.seq = 0
        self.request("handshake", {"Version": 1}, body_expected=False)

    def send(self, command, body):
        self.seq += 1
        out = pack({"Command": command, "Seq": self.seq}, bytearray())
        if body is not None:
            pack(body, out)
        self.sock.sendall(out)

    def read_one(self):
        while True:
            try:
                value, pos = unpack(self.buf, 0)
                del self.buf[:pos]
                return value
            except Incomplete:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise OSError("serf closed the RPC connection")
                self.buf += chunk

    def request(self, command, body=None, body_expected=True):
        self.send(command, body)
        header = self.read_one()
        if header.get("Error"):
            raise OSError(f"serf RPC {command}: {header['Error']}")
        return self.read_one() if body_expected else None

    def records(self):
        """The complete (header, body) pairs already received on a stream, without blocking."""
        while select.select([self.sock], [], [], 0)[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("serf closed the stream")
            self.buf += chunk
        out = []
        while True:
            try:
                header, pos = unpack(self.buf, 0)
                body, pos = unpack(self.buf, pos)
            except Incomplete:
                return out
            del self.buf[:pos]
            out.append((header, body))


class SerfAgent:
    def __init__(self, addr):
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)
        self.rpc = None
        self.stream = None
        self.seen = set()

    def members(self):
        try:
            if self.rpc is None:
                self.rpc = SerfRpc(self.host, self.port)
            body = self.rpc.request("members")
            return [(m["Name"], m["Status"]) for m in body["Members"]]
        except (OSError, ValueError):
            if self.rpc is not None:
                self.rpc.sock.close()
            self.rpc = None
            return None

    def subscribe(self, name):
        self.stream = SerfRpc(self.host, self.port)
        self.stream.send("stream", {"Type": "user"})
        header = self.stream.read_one()
        if header.get("Error"):
            sys.exit(f"poll.py: serf stream on {self.host}:{self.port}: {header['Error']}")
        self.stream.sock.setblocking(True)

    def has_event(self, name):
        for _header, body in self.stream.records():
            if isinstance(body, dict) and body.get("Name"):
                self.seen.add(body["Name"])
        return name in self.seen

    def fire(self, name):
        rpc = SerfRpc(self.host, self.port)
        rpc.request("event", {"Name": name, "Payload": b"bench", "Coalesce": False}, body_expected=False)
        rpc.sock.close()


def watch(agents, done_when, t0):
    """Checks every agent not yet done once per tick until all are done; per-agent times (s since t0)."""
    times = [None] * len(agents)
    deadline = t0 + TIMEOUT
    while True:
        tick = time.time()
        for i, agent in enumerate(agents):
            if times[i] is None and done_when(agent):
                times[i] = time.time() - t0
        if all(t is not None for t in times):
            return times
        if time.time() >= deadline:
            print(f"timeout {sum(t is not None for t in times)}/{len(agents)}")
            sys.exit(0)
        time.sleep(max(0.0, tick + TICK - time.time()))


def report(times):
    times = sorted(times)
    mid = times[len(times) // 2] if len(times) % 2 else (times[len(times) // 2 - 1] + times[len(times) // 2]) / 2
    print(f"{times[-1] * 1000:.0f} {mid * 1000:.0f}")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    kind, addrs, step, args = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4:]
    make = {"cairn": CairnAgent, "serf": SerfAgent}.get(kind)
    if make is None:
        sys.exit(f"poll.py: unknown kind {kind}")
    agents = [make(a) for a in addrs]
    if step == "join":
        t0, n = float(args[0]), int(args[1])

        def all_alive(agent):
            ms = agent.members()
            return ms is not None and sum(1 for _, s in ms if s == "alive") >= n

        report(watch(agents, all_alive, t0))
    elif step == "event":
        name = args[0]
        for agent in agents:
            agent.subscribe(name)
        t0 = time.time()
        agents[0].fire(name)
        report(watch(agents, lambda a: a.has_event(name), t0))
    elif step == "fail":
        pid, node = int(args[0]), args[1]
        t0 = time.time()
        os.kill(pid, signal.SIGKILL)

        def failed(agent):
            ms = agent.members()
            return ms is not None and (node, "failed") in ms

        report(watch(agents, failed, t0))
    else:
        sys.exit(f"poll.py: unknown step {step}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
