"""Missing audio at 3 % packet loss: a real Opus speech stream (espeak-ng, libopus mono with
in-band FEC, as a browser sends) through Rostra's jitter buffer in simulated time, one seeded loss
pattern per seed, and the same arrivals through aiortc's stock audio jitter buffer.

The measurement is the one tests/media/test_jitter.py asserts on three seeds
(tests/media/jitter_playout.py), run over more seeds. A frame is missing when the source was
speaking (louder than -40 dBFS) and the frame played was neither decoded from its packet nor
rebuilt from the next packet's FEC (so concealed by PLC); for the stock buffer, when it never
handed the packet on. Missing audio is the share of all frames; the longest gap is the longest run
of missing frames, 20 ms each. The loss is counted on the packets actually dropped.

Run from the repository root:  .venv/bin/python bench/jitter_loss.py [--seeds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import write_results
from rostra.media.audio import Pcm

# isort: split
# the tests' measurement, importable once harness has put the repository on sys.path
from tests.media.jitter_playout import (
    ACTIVE_DBFS,
    FRAME_MS,
    LOSS_RATE,
    encode,
    is_speaking,
    longest_run,
    play_with_loss,
    speech_pcm,
    stock_delivered,
    stock_missing_frames,
    straight_decode,
)

NAME = "jitter_loss"
DEFAULT_SEEDS = 20
TARGET_MISSING_PCT = 3.5
TARGET_LONGEST_GAP_MS = 60

Figures = dict[str, Any]


def _pct(part: int, whole: int) -> float:
    return round(100 * part / whole, 3)


def one_seed(packets: Sequence[bytes], reference: Sequence[Pcm], seed: int) -> Figures:
    loss = play_with_loss(packets, reference, seed)
    stock_missing = stock_missing_frames(stock_delivered(packets, loss.kept), reference)
    dropped = len(packets) - len(loss.kept)
    return {
        "seed": seed,
        "packets_dropped": dropped,
        "dropped_pct": _pct(dropped, len(packets)),
        "rostra": {
            "missing_pct": _pct(sum(loss.missing), len(loss.played)),
            "longest_gap_ms": longest_run(loss.missing) * FRAME_MS,
            "recovered_by_fec": loss.stats.recovered,
            "concealed": loss.stats.concealed,
        },
        "stock_aiortc": {
            "missing_pct": _pct(sum(stock_missing), len(stock_missing)),
            "longest_gap_ms": longest_run(stock_missing) * FRAME_MS,
        },
    }


def summary(runs: Sequence[Figures], key: str) -> Figures:
    missing = [run[key]["missing_pct"] for run in runs]
    gaps = [run[key]["longest_gap_ms"] for run in runs]
    return {
        "missing_pct_mean": round(statistics.fmean(missing), 3),
        "missing_pct_max": max(missing),
        "longest_gap_ms_max": max(gaps),
        "longest_gap_ms_median": statistics.median(gaps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="loss patterns, 1..N")
    args = parser.parse_args()
    started_at = datetime.now(UTC)
    load_at_start = [round(load, 2) for load in os.getloadavg()]

    with tempfile.TemporaryDirectory(prefix="rostra-bench-jitter-") as folder:
        speech = speech_pcm(Path(folder))
    packets = encode(speech)
    reference = straight_decode(packets)
    runs = [one_seed(packets, reference, seed) for seed in range(1, args.seeds + 1)]
    rostra, stock = summary(runs, "rostra"), summary(runs, "stock_aiortc")
    dropped = [run["dropped_pct"] for run in runs]
    result: Figures = {
        "seeds": args.seeds,
        "loss_rate": LOSS_RATE,
        "dropped_pct_mean": round(statistics.fmean(dropped), 3),
        "dropped_pct_range": [min(dropped), max(dropped)],
        "stream": {
            "packets": len(packets),
            "frame_ms": FRAME_MS,
            "speaking_frames": sum(is_speaking(frame) for frame in reference),
            "speaking_above_dbfs": ACTIVE_DBFS,
            "codec": "libopus mono 20 ms with in-band FEC (packet_loss 5), espeak-ng speech",
        },
        "rostra": rostra,
        "stock_aiortc": stock,
        "targets": {
            "missing_pct": f"<= {TARGET_MISSING_PCT}",
            "longest_gap_ms": f"<= {TARGET_LONGEST_GAP_MS}",
        },
        "verdicts": {
            "missing_within_target": rostra["missing_pct_max"] <= TARGET_MISSING_PCT,
            "longest_gap_within_target": rostra["longest_gap_ms_max"] <= TARGET_LONGEST_GAP_MS,
        },
        "definitions": {
            "missing": "frames played while the source spoke (> -40 dBFS) that were neither "
            "decoded from their packet nor rebuilt from FEC (stock: never handed on), "
            "as a share of all frames",
            "longest_gap_ms": "longest run of missing frames, 20 ms each",
        },
        "runs": runs,
        "load_average_at_start": load_at_start,
    }
    path = write_results(NAME, result, started_at=started_at)
    print(
        f"jitter loss bench: {args.seeds} seeds at {LOSS_RATE:.0%} loss "
        f"(dropped {result['dropped_pct_mean']:.2f} % of {len(packets)} packets on average, "
        f"{min(dropped):.2f}-{max(dropped):.2f} %), load average {load_at_start[0]:.2f}"
    )
    for label, figures in (("rostra jitter buffer", rostra), ("stock aiortc buffer", stock)):
        print(
            f"{label}: missing audio {figures['missing_pct_mean']:.2f} % mean, "
            f"{figures['missing_pct_max']:.2f} % max; longest gap "
            f"{figures['longest_gap_ms_max']} ms (median over seeds "
            f"{figures['longest_gap_ms_median']:.0f} ms)"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
