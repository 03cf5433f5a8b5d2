#!/usr/bin/python3
"""paced_smtp: an SMTP client that sends at a fixed rate and times each
message, for relay_bench's latency part. Not a general-purpose client.

A scheduler releases message i at start + i/rate (open loop: the rate does not
bend to the server's speed) to whichever of `connections` sessions is free;
each session sends MAIL, RCPT and DATA in one write when the server offers
PIPELINING (as Postfix's smtp client does), then the message and the dot,
and times one message from its MAIL to the final 250. A message that finds
no session free waits in the client (counted as `queued`, not in its time).

Run alone it prints one JSON object (latencies in seconds, the achieved rate),
which is how relay_bench runs it: in a process of its own, so that the
benchmark's other threads do not share its interpreter lock.

    paced_smtp.py --address 127.0.0.1:10027 --rate 500 --seconds 3 \\
        --connections 20 --size 4096 --sender s@example.com --recipient r@example.net
"""
import argparse
import asyncio
import json
import sys
import time


def make_message(sender, recipient, size):
    """make_message returns a message (CRLF lines, dot-stuffed, with the final
    dot) whose body is size bytes of 78-character lines, as smtp-source's -l."""
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: paced\r\nMessage-Id: <paced@client.test>\r\n\r\n"
            % (sender, recipient)).encode()
    lines, rest = divmod(size, 78)
    body = (b"X" * 76 + b"\r\n") * lines
    if rest:
        body += b"X" * max(rest - 2, 0) + b"\r\n"
    return head + body + b".\r\n"


class SmtpError(Exception):
    pass


async def reply(reader):
    """reply reads one (possibly multi-line) reply and returns (code, lines)."""
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise SmtpError("connection closed")
        lines.append(line)
        if line[3:4] != b"-":
            return int(line[:3]), lines


async def expect(reader, code):
    got, lines = await reply(reader)
    if got != code:
        raise SmtpError("expected %d, got %r" % (code, b"".join(lines)))
    return lines


async def session(host, port, jobs, sender, recipient, message, out, ready, free):
    """session opens one connection, greets, says so through ready (a
    Semaphore), and sends each message the scheduler puts into jobs until it
    gets None, counting itself in free[0] again after each."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await expect(reader, 220)
        writer.write(b"EHLO client.test\r\n")
        pipelining = any(l[4:].strip().upper() == b"PIPELINING" for l in await expect(reader, 250))
        ready.release()
        envelope = [b"MAIL FROM:<%s>\r\n" % sender.encode(), b"RCPT TO:<%s>\r\n" % recipient.encode(),
                    b"DATA\r\n"]
        while True:
            job = await jobs.get()
            if job is None:
                break
            started = time.perf_counter()
            if pipelining:
                writer.write(b"".join(envelope))
                for code in (250, 250, 354):
                    await expect(reader, code)
            else:
                for command, code in zip(envelope, (250, 250, 354)):
                    writer.write(command)
                    await expect(reader, code)
            writer.write(message)
            await expect(reader, 250)
            out.append(time.perf_counter() - started)
            free[0] += 1
        writer.write(b"QUIT\r\n")
        await writer.drain()
    finally:
        writer.close()


async def paced(host, port, rate, seconds, connections, sender, recipient, size):
    """paced sends rate*seconds messages at rate per second over connections
    sessions and returns the result (see run)."""
    message = make_message(sender, recipient, size)
    jobs = asyncio.Queue()
    latencies = []
    ready = asyncio.Semaphore(0)
    free = [connections]  # sessions without a message, as the scheduler counts them
    workers = [asyncio.ensure_future(session(host, port, jobs, sender, recipient, message, latencies, ready, free))
               for _ in range(connections)]
    for _ in workers:  # every session greeted before the clock starts
        await ready.acquire()
    total = max(1, int(rate * seconds))
    loop = asyncio.get_running_loop()
    start = loop.time()
    queued = 0
    for i in range(total):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if free[0] <= 0:
            queued += 1
        free[0] -= 1
        jobs.put_nowait(i)
        for w in workers:
            if w.done():  # a session failed: stop early and say why
                w.result()
    for _ in workers:
        jobs.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = loop.time() - start
    return {"latencies": latencies, "sent": len(latencies), "seconds": elapsed,
            "rate": len(latencies) / elapsed if elapsed > 0 else 0.0, "queued": queued}


def run(address, rate, seconds, connections=20, sender="sender@example.com",
        recipient="rcpt@example.net", size=4096):
    """run paces messages to address ("host:port") and returns {"latencies"
    (seconds, in completion order), "sent", "seconds", "rate" (achieved),
    "queued" (messages that found every session busy)}."""
    host, _, port = address.rpartition(":")
    return asyncio.run(paced(host.strip("[]"), int(port), rate, seconds, connections, sender,
                             recipient, size))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", required=True, help="host:port")
    p.add_argument("--rate", type=float, required=True, help="messages per second")
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--size", type=int, default=4096, help="body bytes")
    p.add_argument("--sender", default="sender@example.com")
    p.add_argument("--recipient", default="rcpt@example.net")
    a = p.parse_args(argv)
    result = run(a.address, a.rate, a.seconds, a.connections, a.sender, a.recipient, a.size)
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
