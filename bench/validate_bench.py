"""Throughput and peak memory of dataset validation: tunegate's validator against a reference.

The reference follows OpenAI's "Data preparation and analysis for chat model fine-tuning"
recipe as written: read every line into a list, `json.loads` each, run its format checks, then
tiktoken-encode every message value to count tokens. Each contender runs in its own child
process over the same generated chat dataset; the parent reads the child's peak RSS from
`os.wait4`. Nothing is asserted: the figures are printed (and optionally written as JSON).

    python bench/validate_bench.py                 # 100 MB
    python bench/validate_bench.py --size-mb 1024  # the memory figure that matters
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODEL = "gpt-4o-mini-2024-07-18"
_VOCABULARY = """
the of and to in is you that it for was on are as with his they at be this have from or one
had by word but not what all were we when your can said there use an each which she do how
their if will up other about out many then them these so some her would make like him into
time has look two more write go see number no way could people my than first water been call
who oil its now find long down day did get come made may part order invoice refund shipping
account password reset upgrade plan billing model dataset token latency deploy cluster region
service error timeout retry queue worker cache
"""
WORDS = _VOCABULARY.split()
SYSTEM_PROMPTS = [
    "You are a helpful customer support assistant for Acme Widgets. " * 6,
    "You are a concise assistant that answers billing questions. Be polite and brief. " * 5,
    "You are an expert SRE. Explain incidents clearly and suggest next steps. " * 8,
    "You translate informal requests into formal business English. " * 4,
]


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    if rng.random() < 0.3:
        price = f"{rng.randint(1, 999)}.{rng.randint(10, 99)}"
        text += f" Order {rng.randint(10_000, 99_999)} costs ${price}."
    if rng.random() < 0.02:  # some PII, for the redacting run to find
        user, extension = rng.randint(1, 10**6), rng.randint(1000, 9999)
        text += f" Reach me at user{user}@example.com or (415) 555-{extension}."
    return text.capitalize() + "."


def _example(rng: random.Random) -> dict[str, Any]:
    messages = [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}]
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        messages.append({"role": "user", "content": _sentence(rng, rng.randint(10, 80))})
        messages.append({"role": "assistant", "content": _sentence(rng, rng.randint(20, 160))})
    return {"messages": messages}


def generate(path: Path, size_mb: float, seed: int = 7) -> int:
    rng = random.Random(seed)
    target, written, lines = int(size_mb * 1024 * 1024), 0, 0
    with path.open("wb") as sink:
        while written < target:
            line = json.dumps(_example(rng)).encode() + b"\n"
            sink.write(line)
            written += len(line)
            lines += 1
    return lines


# --- contenders (each runs in a child process) ---------------------------------------------------


def run_reference(path: Path) -> dict[str, Any]:
    from service.domain.tokens import get_encoding  # tiktoken's own encoding, loaded offline

    encoding = get_encoding("o200k_base")
    with open(path, encoding="utf-8") as source:
        dataset = [json.loads(line) for line in source]
    format_errors: defaultdict[str, int] = defaultdict(int)
    for ex in dataset:
        if not isinstance(ex, dict):
            format_errors["data_type"] += 1
            continue
        messages = ex.get("messages", None)
        if not messages:
            format_errors["missing_messages_list"] += 1
            continue
        for message in messages:
            if "role" not in message or "content" not in message:
                format_errors["message_missing_key"] += 1
            if any(
                k not in ("role", "content", "name", "function_call", "weight") for k in message
            ):
                format_errors["message_unrecognized_key"] += 1
            if message.get("role", None) not in ("system", "user", "assistant", "function"):
                format_errors["unrecognized_role"] += 1
            content = message.get("content", None)
            function_call = message.get("function_call", None)
            if (not content and not function_call) or not isinstance(content, str):
                format_errors["missing_content"] += 1
        if not any(message.get("role", None) == "assistant" for message in messages):
            format_errors["example_missing_assistant_message"] += 1

    def num_tokens_from_messages(messages: list[dict[str, str]]) -> int:
        num_tokens = 0
        for message in messages:
            num_tokens += 3
            for key, value in message.items():
                num_tokens += len(encoding.encode(value))
                if key == "name":
                    num_tokens += 1
        return num_tokens + 3

    def num_assistant_tokens(messages: list[dict[str, str]]) -> int:
        return sum(len(encoding.encode(m["content"])) for m in messages if m["role"] == "assistant")

    n_missing_system = n_missing_user = 0
    convo_lens, assistant_lens, n_messages = [], [], []
    for ex in dataset:
        messages = ex["messages"]
        n_missing_system += not any(m["role"] == "system" for m in messages)
        n_missing_user += not any(m["role"] == "user" for m in messages)
        n_messages.append(len(messages))
        convo_lens.append(num_tokens_from_messages(messages))
        assistant_lens.append(num_assistant_tokens(messages))
    for values in (n_messages, convo_lens, assistant_lens):
        statistics.mean(values), statistics.median(values), statistics.quantiles(values, n=10)
    billing = sum(min(16_385, length) for length in convo_lens)
    return {"examples": len(dataset), "total_tokens": sum(convo_lens), "billing": billing}


def run_tunegate(path: Path, pii_mode: str) -> dict[str, Any]:
    from service.domain.datasets.validate import DatasetOptions, validate_file

    entities = () if pii_mode == "off" else DatasetOptions().pii_entities
    mode = "allow" if pii_mode == "off" else pii_mode
    options = DatasetOptions(model=MODEL, pii_mode=mode, pii_entities=entities)
    report = validate_file(path, options)
    assert report.tokens is not None
    return {
        "examples": report.examples,
        "total_tokens": report.tokens.total,
        "billing": report.tokens.billing_tokens,
        "valid": report.valid,
        "pii": report.pii.counts,
    }


CONTENDERS = {
    "reference (cookbook recipe)": ["reference"],
    "tunegate, PII scan off": ["tunegate", "off"],
    "tunegate, PII redact": ["tunegate", "redact"],
}


def child_main(kind: str, path: Path, extra: list[str]) -> None:
    started = time.perf_counter()
    result = run_reference(path) if kind == "reference" else run_tunegate(path, extra[0])
    result["seconds"] = time.perf_counter() - started
    print(json.dumps(result))


def measure(args: list[str], path: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", *args[:1], str(path), *args[1:]]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{command} failed with {process.returncode}")
    result: dict[str, Any] = json.loads(output)
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports kilobytes
    # CPU time is less disturbed than wall time by other work on the machine.
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=100.0)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the dataset")
    parser.add_argument("--only", choices=sorted(CONTENDERS), action="append")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child[0], Path(args.child[1]), args.child[2:])
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as workdir:
        path = Path(workdir) / "bench.jsonl"
        lines = generate(path, args.size_mb)
        size_mb = path.stat().st_size / (1024 * 1024)
        print(f"dataset: {size_mb:.1f} MB, {lines} examples, model {MODEL}")
        figures = {}
        for name in args.only or CONTENDERS:
            result = measure(CONTENDERS[name], path)
            result["mb_per_s"] = size_mb / result["seconds"]
            figures[name] = result
            print(
                f"{name:<28} {result['mb_per_s']:6.1f} MB/s  {result['seconds']:6.1f} s wall  "
                f"{result['cpu_seconds']:6.1f} s CPU  peak RSS {result['peak_rss_mb']:7.1f} MB  "
                f"tokens {result['total_tokens']}"
            )
    if args.json:
        args.json.write_text(json.dumps({"size_mb": size_mb, "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
