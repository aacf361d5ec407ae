#!/usr/bin/env python3
"""Hostile clients for scripts/soak.sh: abuse a verifier's public (TLS)
listener on loopback until a deadline, then print what each kind saw.

usage: soak-hostile.py HOST:PORT SECONDS KIND SOURCE_ADDRESS

KIND is one of
  slowloris   hold many TLS connections, sending a request header one byte
              every few seconds (the verifier's request timeout must end them)
  oversized   POST /v1/release bodies far above --body-limit, declared and
              chunked (must be refused with 413, or the connection closed)
  garbage     raw TCP connections that send random bytes instead of a TLS
              ClientHello, or a ClientHello cut off mid-way
  nonces      a flood of POST /v1/challenge never redeemed, and of
              POST /v1/release with made-up documents and nonces
  connflood   open TCP connections as fast as possible and hold them
              (past --max-connections-per-address), then drop them

Clients bind SOURCE_ADDRESS (127.0.0.2, 127.0.0.3, ...) so that the
verifier's per-address limits fall on them and not on the good clients
on 127.0.0.1. Nothing here is a secret; the TLS certificate is not checked
(the attacker does not care who it talks to). Standard library only.
"""

import base64
import collections
import json
import os
import random
import socket
import ssl
import sys
import threading
import time

host_port, seconds, kind, source = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
host, port = host_port.rsplit(":", 1)
port = int(port)
deadline = time.monotonic() + seconds
counts = collections.Counter()
lock = threading.Lock()


def count(what):
    with lock:
        counts[what] += 1


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


CTX = tls_context()


def tcp(timeout=10.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect((host, port))
    return s


def tls(timeout=10.0):
    return CTX.wrap_socket(tcp(timeout), server_hostname="localhost")


def status_of(sock):
    """Reads an HTTP response's status line (or None if the server closed)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    line = data.split(b"\r\n", 1)[0].split()
    return line[1].decode() if len(line) > 1 else None


def request(method, path, body=b"", extra=b""):
    s = tls()
    try:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
        ).encode()
        s.sendall(head + extra + b"\r\n" + body)
        return status_of(s)
    finally:
        s.close()


def guard(fn):
    def run():
        while time.monotonic() < deadline:
            try:
                fn()
            except (OSError, ssl.SSLError) as e:
                count(f"error:{type(e).__name__}")
                time.sleep(0.05)
    return run


def slowloris_one():
    s = tls(timeout=60)
    count("opened")
    header = b"POST /v1/release HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n"
    try:
        for b in header:
            if time.monotonic() > deadline:
                break
            s.sendall(bytes([b]))
            time.sleep(2.0)
        count("survived_to_deadline")
    except (OSError, ssl.SSLError):
        count("cut_off_by_server")
    finally:
        s.close()


def oversized_one():
    big = b'{"attestation_document":"' + b"A" * (4 << 20) + b'","secrets":["x"]}'
    try:
        st = request("POST", "/v1/release", big)
        count(f"declared:{st}")
    except (OSError, ssl.SSLError):
        count("declared:closed")
    s = tls()
    try:
        s.sendall(b"POST /v1/release HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Type: application/json\r\nConnection: close\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (1 << 16, b"B" * (1 << 16))
        for _ in range(64):
            s.sendall(chunk)
        s.sendall(b"0\r\n\r\n")
        count(f"chunked:{status_of(s)}")
    except (OSError, ssl.SSLError):
        count("chunked:closed")
    finally:
        s.close()


def garbage_one():
    s = tcp()
    try:
        if random.random() < 0.5:
            s.sendall(os.urandom(random.randint(1, 8192)))
        else:
            # A TLS record header announcing a 16 KiB handshake, then less.
            s.sendall(b"\x16\x03\x01\x40\x00\x01\x00\x3f\xfc" + os.urandom(512))
        s.settimeout(15)
        while s.recv(4096):
            pass
        count("closed_by_server")
    except socket.timeout:
        count("timeout")
    except OSError:
        count("reset_by_server")
    finally:
        s.close()


def nonces_one():
    try:
        st = request("POST", "/v1/challenge")
        count(f"challenge:{st}")
    except (OSError, ssl.SSLError):
        count("challenge:closed")
    doc = base64.b64encode(os.urandom(random.randint(1, 3000))).decode()
    body = json.dumps({"attestation_document": doc, "secrets": ["soak-secret"]}).encode()
    try:
        st = request("POST", "/v1/release", body)
        count(f"release:{st}")
    except (OSError, ssl.SSLError):
        count("release:closed")
    # Malformed JSON, wrong types, unknown secrets.
    for bad in (b"{", b'{"attestation_document":1,"secrets":"x"}', b"\xff" * 64):
        try:
            count(f"malformed:{request('POST', '/v1/release', bad)}")
        except (OSError, ssl.SSLError):
            count("malformed:closed")


def connflood_once():
    held = []
    for _ in range(200):
        try:
            held.append(tcp(timeout=5))
            count("connected")
        except OSError:
            count("refused")
    time.sleep(3)
    # Of the connections held, how many does the server still answer?
    for s in held:
        try:
            s.settimeout(0.5)
            s.sendall(b"\x16\x03\x01\x00\x05hello")
            if not s.recv(1):
                count("dropped_by_server")
        except socket.timeout:
            count("held_open")
        except OSError:
            count("dropped_by_server")
        finally:
            s.close()


workers = {
    "slowloris": (slowloris_one, 24),
    "oversized": (oversized_one, 2),
    "garbage": (garbage_one, 4),
    "nonces": (nonces_one, 4),
    "connflood": (connflood_once, 1),
}
fn, n = workers[kind]
threads = [threading.Thread(target=guard(fn), daemon=True) for _ in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=max(0.0, deadline - time.monotonic()) + 30)
print(f"hostile {kind} from {source}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
