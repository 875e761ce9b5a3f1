"""Proof-of-work (ALTCHA) on join: what it costs a listener, the server and an attacker.

1. Solve time in a browser: the listener page of a real `rostra serve`, in Debian's Chromium
   (headless), solves `--challenges` challenges at each difficulty step with pow.js (the `altcha`
   npm package's SHA worker, as many workers as navigator.hardwareConcurrency, at most 4), timed
   in the page from the call to the payload (workers started each time, as on a real join); every
   payload is then redeemed by the server code, so only real solutions are timed. Median and p95.
2. An attacker's native speed: SHA-256 of the password ALTCHA hashes (salt + nonce + counter,
   36 bytes) with `openssl speed` on one core, and a Python/hashlib solver loop on one core.
3. The server's cost: issuing a challenge, verifying a solution (signature and key signature),
   and spending it once on memory, SQLite and a real Redis; µs per operation.
4. The attacker's CPU per counted listener at each step: the mean work is max_number / 2 hashes,
   at the native rate on one core.

Run from the repository root:  .venv/bin/python bench/pow.py [--challenges 20]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import statistics
import struct
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import altcha

from harness import CHROMIUM, create_space, percentiles, running_server, write_results
from rostra.audience.challenge import (
    DIFFICULTY_STEPS,
    KEY_SIGNATURE_LABEL,
    SIGNATURE_LABEL,
    ChallengeBook,
    derive_key,
)
from rostra.clock import SystemClock
from rostra.store.challenge_redis import RedisSpentSolutions
from rostra.store.challenge_spent import MemorySpentSolutions, SpentSolutions
from rostra.store.challenge_sqlite import SqliteSpentSolutions

SECRET = "bench-signing-secret"  # noqa: S105 - a throwaway key for this bench
SPACE = "spc0000000000001"
PASSWORD_BYTES = 16 + 16 + 4  # salt + nonce + a uint32 counter
SOLVE_JS = """
async (challenge) => {
  const { solveChallenge } = await import('/static/pow.js');
  const started = performance.now();
  const payload = await solveChallenge(challenge);
  return { ms: performance.now() - started, payload };
}
"""


def browser_solves(count: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    book = ChallengeBook(SECRET, MemorySpentSolutions(), SystemClock())
    figures: dict[str, Any] = {}
    with running_server() as server, sync_playwright() as playwright:
        space = create_space(server, "Proof-of-work bench")
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(space["listen_url"])
            figures["hardware_concurrency"] = page.evaluate("navigator.hardwareConcurrency")
            page.evaluate(SOLVE_JS, book.issue(SPACE, 1_000))  # warm: modules and worker cached
            for max_number in DIFFICULTY_STEPS:
                times_s: list[float] = []
                tries = 0
                for _ in range(count):
                    challenge = book.issue(SPACE, max_number)
                    result = page.evaluate(SOLVE_JS, challenge)
                    book.redeem(SPACE, result["payload"], max_number)  # a real solution
                    times_s.append(result["ms"] / 1000)
                    tries += int(_counter(result["payload"])) + 1
                figures[str(max_number)] = {
                    "solve_s": percentiles(times_s),
                    "mean_s": round(statistics.fmean(times_s), 4),
                    "hashes_per_s": round(tries / sum(times_s)),
                }
                print(f"chromium max_number={max_number}: {figures[str(max_number)]}")
        finally:
            browser.close()
    return figures


def _counter(payload: str) -> int:
    return int(altcha.Payload.from_base64(payload).solution.counter)


def openssl_hashes_per_s(seconds: int = 3) -> float:
    """SHA-256 of a 36-byte input on one core, by OpenSSL (what a native solver does)."""
    out = subprocess.run(
        ["openssl", "speed", "-seconds", str(seconds), "-bytes", str(PASSWORD_BYTES), "sha256"],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds * 10,
    ).stdout
    # the table's line: "sha256   310413.33k" (thousands of bytes per second)
    match = re.search(r"^sha256\s+([\d.]+)k\s*$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"cannot read openssl speed: {out[-400:]}")
    return float(match.group(1)) * 1000 / PASSWORD_BYTES


def python_hashes_per_s(count: int = 500_000) -> float:
    """A solver loop in Python over hashlib (C SHA-256): the cheapest script an attacker writes."""
    prefix = bytes(32)
    started = time.perf_counter()
    for counter in range(count):
        hashlib.sha256(prefix + struct.pack(">I", counter)).digest()
    return count / (time.perf_counter() - started)


def _per_op_us(operation: Any, count: int) -> float:
    started = time.perf_counter()
    for index in range(count):
        operation(index)
    return round((time.perf_counter() - started) / count * 1e6, 2)


def server_costs(count: int) -> dict[str, Any]:
    from tests.redis_server import running_redis  # importable once harness set the path

    clock = SystemClock()
    book = ChallengeBook(SECRET, MemorySpentSolutions(), clock)
    payloads = []
    for _ in range(count):
        challenge = book.issue(SPACE, 100)
        solution = altcha.solve_challenge(altcha.Challenge.from_dict(challenge))
        assert solution is not None
        payloads.append(altcha.Payload(altcha.Challenge.from_dict(challenge), solution))
    encoded = [payload.to_base64() for payload in payloads]
    key = derive_key(SECRET, SIGNATURE_LABEL)
    key_signature_key = derive_key(SECRET, KEY_SIGNATURE_LABEL)
    figures: dict[str, Any] = {
        "issue_us": _per_op_us(lambda _: book.issue(SPACE, DIFFICULTY_STEPS[0]), count),
        "verify_us": _per_op_us(
            lambda i: altcha.verify_solution(encoded[i], key, hmac_key_secret=key_signature_key),
            count,
        ),
    }
    now_s = time.time()
    with tempfile.TemporaryDirectory(prefix="rostra-bench-") as folder:
        stores: dict[str, SpentSolutions] = {
            "memory": MemorySpentSolutions(),
            "sqlite": SqliteSpentSolutions(Path(folder) / "audience.sqlite3"),
        }
        with running_redis(Path(folder) / "redis") as redis_server:
            stores["redis"] = RedisSpentSolutions(redis_server.url)
            for name, store in stores.items():
                figures[f"spend_{name}_us"] = _per_op_us(
                    lambda i, store=store: store.spend(f"k{i}", now_s + 120, now_s), count
                )
                store.close()
    fresh = ChallengeBook(SECRET, MemorySpentSolutions(), clock)
    figures["redeem_memory_us"] = _per_op_us(lambda i: fresh.redeem(SPACE, encoded[i], 100), count)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--challenges", type=int, default=20)
    parser.add_argument("--verifies", type=int, default=2_000)
    args = parser.parse_args()
    started_at = datetime.now(UTC)

    native = openssl_hashes_per_s()
    python = python_hashes_per_s()
    print(f"native sha256/s on one core: {native:,.0f}; python loop: {python:,.0f}")
    costs = server_costs(args.verifies)
    print(f"server: {costs}")
    chromium = browser_solves(args.challenges)
    attacker = {
        str(max_number): {
            "mean_hashes": max_number / 2,
            "native_core_ms": round(max_number / 2 / native * 1000, 3),
            "python_core_ms": round(max_number / 2 / python * 1000, 2),
            "counted_per_core_s_native": round(native / (max_number / 2), 1),
        }
        for max_number in DIFFICULTY_STEPS
    }
    print(f"attacker per counted listener: {attacker}")
    path = write_results(
        "pow",
        {
            "difficulty_steps": list(DIFFICULTY_STEPS),
            "chromium": chromium,
            "native_sha256_per_s_one_core": round(native),
            "python_hashlib_per_s_one_core": round(python),
            "server": costs,
            "attacker": attacker,
        },
        started_at=started_at,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
