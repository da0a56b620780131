#!/usr/bin/env python3
"""Side-by-side ratios of chatbridge-bench against another implementation of the same workloads
(docs/benchmarks.md, "Side by side"): every part in a fresh process, the two sides alternating
(which goes first flips every round), the median of the per-round ratios reported.

    bench/compare.py --workload tests/bench/small.json --rounds 3 \\
        --other 'python3 bench_original.py --workload {workload} --only {part}'

`--other` is a command template whose {part} / {workload} are filled in; it must print one JSON
object with the keys of docs/benchmarks.md ("Output"). Ratios are > 1 when
chatbridge-bench is faster: other_time / cpp_time for the *_s times, cpp_rate / other_rate for the
rates, and cpp / other for peak RSS (< 1 = C++ uses less).
"""
import argparse
import json
import shlex
import statistics
import subprocess
import sys

PART_KEYS = {
    "train1": ["train1_step_s", "train1_step_s_min"],
    "train2": ["train2_step_s", "train2_step_s_min"],
    "decode": ["decode_tok_s", "decode_tok_s_best", "prefill_s", "prefill_s_min", "prefill_generate_s",
               "prefill_generate_s_min"],
    "data": [f"data_{k}_per_s{b}" for k in ("image", "audio", "video", "valor_image") for b in ("", "_best")],
}


def is_rate(key):
    return "per_s" in key or "tok_s" in key


def run_json(cmd):
    out = subprocess.run(cmd, shell=True, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return json.loads(out.stdout)


def ratio(key, cpp, other):
    if key == "peak_rss_mb":
        return cpp / other
    return cpp / other if is_rate(key) else other / cpp


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", required=True)
    ap.add_argument("--other", required=True, help="command template with {part} and {workload}")
    ap.add_argument("--cpp", default="build/bin/chatbridge-bench", help="the chatbridge-bench binary")
    ap.add_argument("--cpp-args", default="", help="more arguments for chatbridge-bench (e.g. '--llama-precision q4_0')")
    ap.add_argument("--parts", default="train1,train2,decode,data")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    parts = a.parts.split(",")
    for p in parts:
        if p not in PART_KEYS:
            sys.exit(f"compare: unknown part '{p}' (train1, train2, decode, data)")

    rows = {}  # key -> {"cpp": [...], "other": [...], "ratio": [...]}
    for r in range(a.rounds):
        for part in parts:
            cmds = {"cpp": f"{shlex.quote(a.cpp)} {part} --workload {shlex.quote(a.workload)} {a.cpp_args}",
                    "other": a.other.format(part=part, workload=shlex.quote(a.workload))}
            order = ["cpp", "other"] if r % 2 == 0 else ["other", "cpp"]
            got = {side: run_json(cmds[side]) for side in order}
            # The decode part's own peak: its process's peak_rss_mb also counts the bandwidth readings' buffer.
            cpp_rss = "decode_peak_rss_mb" if part == "decode" and "decode_peak_rss_mb" in got["cpp"] else "peak_rss_mb"
            for key in PART_KEYS[part] + ["peak_rss_mb"]:
                cpp_key = cpp_rss if key == "peak_rss_mb" else key
                if cpp_key not in got["cpp"] or key not in got["other"]:
                    continue  # a figure only one side measures (the original has no prefill_generate_s)
                k = key if key != "peak_rss_mb" else f"peak_rss_mb ({part})"
                row = rows.setdefault(k, {"cpp": [], "other": [], "ratio": []})
                c, o = got["cpp"][cpp_key], got["other"][key]
                row["cpp"].append(c)
                row["other"].append(o)
                row["ratio"].append(ratio(key, c, o))
            print(f"compare: round {r + 1}/{a.rounds} {part} done", file=sys.stderr)

    summary = {k: {"cpp_median": statistics.median(v["cpp"]), "other_median": statistics.median(v["other"]),
                   "ratio_median": statistics.median(v["ratio"]), "ratios": v["ratio"]} for k, v in rows.items()}
    print(json.dumps({"workload": a.workload, "rounds": a.rounds, "other": a.other, "results": summary}, indent=1))
    print("\n| key | C++ | other | ratio (median of rounds) | per round |", file=sys.stderr)
    print("|---|---|---|---|---|", file=sys.stderr)
    for k, v in summary.items():
        print(f"| `{k}` | {v['cpp_median']:.4g} | {v['other_median']:.4g} | **{v['ratio_median']:.2f}** | "
              + ", ".join(f"{x:.2f}" for x in v["ratios"]) + " |", file=sys.stderr)


if __name__ == "__main__":
    main()
