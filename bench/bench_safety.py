"""The safety plugin's output scanner on a stream, against baselines in the same run.

`uv run python bench/bench_safety.py [--tokens 5000] [--rounds 7]`: a reply of `--tokens`
tokens (words, with an SSN, a card number and an e-mail address every ~50 words) streamed
through the kernel's guard (`Guard.provider(...).stream`) from a `ScriptedProvider`, in
process, three ways: no checks (the guard's pass-through), `armillary.testing.checks.PII()`
(two regexes, the kernel's reference check) and the safety plugin's `OutputScanner` with
its defaults (six PII kinds, Luhn and mod-97 validation). Twice: one token per chunk (a
paced model: every token is a look) and 64-character chunks (what `/ollama/chat`'s
read-ahead hands the guard from a fast model). Prints the median rate of each and the
ratios; the rounds are rotated so no subject always runs first.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from armillary_safety.checks import OutputScanner
from armillary_safety.settings import SafetySettings

from armillary import ChatRequest, Guard, Message, SafetyPipeline
from armillary.testing import ScriptedProvider, Turn
from armillary.testing.checks import PII

#: prose: mostly no digits, like a model's reply (digits are what make the digit
#: patterns search; see docs/performance.md)
WORDS = ("the", "account", "holder", "asked", "about", "her", "balance", "and", "we",
         "looked", "it", "up", "in", "2024", "records", "for", "March", "3,", "so")


def reply(tokens: int) -> str:
    words = []
    for i in range(tokens):
        if i % 50 == 17:
            words.append(["123-45-6789", "4111 1111 1111 1111", "jane.doe@example.com"][
                (i // 50) % 3])
        else:
            words.append(WORDS[i % len(WORDS)])
    return " ".join(words) + "."


def chunks(text: str, size: int | None) -> list[str]:
    if size is None:
        return [w + " " for w in text.split(" ")]
    return [text[i:i + size] for i in range(0, len(text), size)]


async def run_once(pipeline: SafetyPipeline, pieces: list[str]) -> tuple[float, str]:
    provider = Guard(pipeline).provider(ScriptedProvider([Turn(chunks=pieces)]))
    request = ChatRequest(messages=[Message(role="user", content="go")])
    started = time.perf_counter()
    out = [c.delta async for c in provider.stream(request)]
    return time.perf_counter() - started, "".join(out)


async def main(tokens: int, rounds: int) -> None:
    text = reply(tokens)
    subjects = {"no checks": SafetyPipeline([]), "PII() reference": SafetyPipeline([PII()]),
                "OutputScanner": SafetyPipeline([OutputScanner(SafetySettings())])}
    for label, size in (("one token per chunk", None), ("64-character chunks", 64)):
        pieces = chunks(text, size)
        times: dict[str, list[float]] = {name: [] for name in subjects}
        names = list(subjects)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                elapsed, out = await run_once(subjects[name], pieces)
                if name == "OutputScanner":
                    assert "123-45-6789" not in out and "jane.doe" not in out
                times[name].append(elapsed)
        base = statistics.median(times["no checks"])
        ref = statistics.median(times["PII() reference"])
        print(f"\n{label}: {len(pieces)} chunks, {len(text)} characters")
        for name, ts in times.items():
            t = statistics.median(ts)
            print(f"  {name:16s} {len(pieces) / t:10,.0f} chunks/s  {t * 1e6 / len(pieces):7.1f}"
                  f" µs/chunk  time x{t / base:5.2f} vs no checks  x{t / ref:5.2f} vs PII()")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.tokens, args.rounds))
