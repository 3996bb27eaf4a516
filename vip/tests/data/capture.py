#!/usr/bin/env python3
"""Captures the codec test vectors in tests/data/ from the running kernel and Debian tools.

Run as root: python3 vip/tests/data/capture.py vip/tests/data
Makes a namespace vipcap<pid> with a veth pair eth0/peer0 (nothing leaves the machine),
listens on peer0 with an AF_PACKET socket and saves whole Ethernet frames.
"""
import ctypes, os, socket, struct, subprocess, sys, time

out = sys.argv[1]
ns = f"vipcap{os.getpid()}"

def ip(*a):
    subprocess.run(["ip", *a], check=True)

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data)//2}H", data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def capture(sock, want, timeout=3.0):
    sock.settimeout(timeout)
    end = time.time() + timeout
    while time.time() < end:
        data, addr = sock.recvfrom(4096)
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        if want(data):
            return data
    raise SystemExit("nothing captured")

ip("netns", "add", ns)
try:
    ip("-n", ns, "link", "add", "eth0", "address", "02:00:00:00:00:01", "type", "veth",
       "peer", "name", "peer0", "address", "02:00:00:00:00:02")
    for l in ("lo", "eth0", "peer0"):
        ip("-n", ns, "link", "set", l, "up")
    ip("-n", ns, "addr", "add", "10.79.0.1/24", "dev", "eth0")
    ip("-n", ns, "addr", "add", "fd79::1/64", "dev", "eth0", "nodad")
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns")
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind(("peer0", 0))
    time.sleep(0.3)
    while True:  # drain
        s.settimeout(0.05)
        try:
            s.recv(4096)
        except socket.timeout:
            break

    def save(name, data):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(name, len(data), "bytes")

    # 1. arping -U (Debian 12 arping 2.x, Thomas Habets), gratuitous ARP request.
    subprocess.run(["arping", "-q", "-U", "-c", "1", "-w", "0", "-i", "eth0", "-S",
                    "10.79.0.1", "10.79.0.1"])
    save("garp_arping.bin", capture(s, lambda d: d[12:14] == b"\x08\x06"))

    # 2. The kernel's answer to an RFC 5227 probe (sender IP 0.0.0.0) for its address.
    mac = bytes.fromhex("020000000002")
    probe = (b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
             + mac + bytes(4) + bytes(6) + socket.inet_aton("10.79.0.1"))
    s.send(probe)
    save("arp_reply_to_probe.bin",
         capture(s, lambda d: d[12:14] == b"\x08\x06" and d[20:22] == b"\x00\x02"))

    # 3. The kernel defending fd79::1 against a DAD NS (from ::): NA to ff02::1.
    tgt = socket.inet_pton(socket.AF_INET6, "fd79::1")
    dst = socket.inet_pton(socket.AF_INET6, "ff02::1:ff00:1")
    icmp = struct.pack("!BBHI", 135, 0, 0, 0) + tgt
    c = csum(bytes(16) + dst + struct.pack("!I", len(icmp)) + b"\0\0\0\x3a" + icmp)
    icmp = icmp[:2] + struct.pack("!H", c) + icmp[4:]
    ns_frame = (b"\x33\x33\xff\x00\x00\x01" + mac + b"\x86\xdd"
                + struct.pack("!IHBB", 0x60000000, len(icmp), 58, 255) + bytes(16) + dst + icmp)
    s.send(ns_frame)
    save("na_dad_defense.bin",
         capture(s, lambda d: d[12:14] == b"\x86\xdd" and d[54] == 136))

    # 4. The kernel's own DAD NS (from ::, with the RFC 7527 nonce option) for a new address.
    subprocess.run(["ip", "addr", "add", "fd79::2/64", "dev", "eth0"], check=True)
    save("ns_kernel_dad.bin",
         capture(s, lambda d: d[12:14] == b"\x86\xdd" and d[54] == 135 and d[22:38] == bytes(16)))
finally:
    subprocess.run(["ip", "netns", "del", ns])
