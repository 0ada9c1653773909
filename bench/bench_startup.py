"""Startup cost of the kernel: time to the first 200 on /health and RSS after startup.

(a) the kernel with no plugins and (b) every first-party plugin enabled, each against a
bare FastAPI + uvicorn app measured in the same run (alternating, median of N rounds).

    uv run python bench/bench_startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness import REPO, free_port, median, ratio_line, start_and_measure

FIRST_PARTY = sorted(p.name for p in (REPO / "plugins").iterdir()
                     if (p / "pyproject.toml").exists())


def armillary_cmd(config: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "armillary", "serve", "--config", str(config),
            "--port", str(port), "--log-level", "warning"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp())
    configs = {
        "kernel, no plugins": "[kernel]\nenable = []\nstore = \"memory://\"\n",
        "every first-party plugin": "[kernel]\nenable = [{}]\nstore = \"memory://\"\n".format(
            ", ".join(f'"{n}"' for n in FIRST_PARTY)),
    }
    paths = {}
    for i, (name, text) in enumerate(configs.items()):
        paths[name] = folder / f"config{i}.toml"
        paths[name].write_text(text)

    results: dict[str, list[tuple[float, int]]] = {"baseline": [], **{n: [] for n in configs}}
    for round_number in range(args.rounds + 1):  # round 0 warms the bytecode caches
        port = free_port()
        b = start_and_measure([sys.executable, str(REPO / "bench" / "bare_app.py"), str(port)],
                              f"http://127.0.0.1:{port}/health")
        if round_number:
            results["baseline"].append((b.seconds_to_first_200, b.rss_kib))
        for name, path in paths.items():
            port = free_port()
            s = start_and_measure(armillary_cmd(path, port), f"http://127.0.0.1:{port}/health")
            if round_number:
                results[name].append((s.seconds_to_first_200, s.rss_kib))

    base_t = median([t for t, _ in results["baseline"]])
    base_r = median([r for _, r in results["baseline"]]) / 1024
    targets = {"kernel, no plugins": ("1.1x", "1.1x"),
               "every first-party plugin": ("1.3x", "1.4x")}
    print(f"startup, median of {args.rounds} rounds; plugins: {', '.join(FIRST_PARTY)}")
    for name in configs:
        t = median([t for t, _ in results[name]])
        r = median([r for _, r in results[name]]) / 1024
        print(ratio_line(f"{name}: time to first 200", t, base_t, "s", targets[name][0]))
        print(ratio_line(f"{name}: RSS after startup", r, base_r, "MiB", targets[name][1]))


if __name__ == "__main__":
    main()
