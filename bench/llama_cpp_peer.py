#!/usr/bin/env python3
"""llama.cpp as the peer of `chatbridge-bench decode` and `chatbridge-bench quality` on the same weights
(docs/benchmarks.md, "llama.cpp side by side"). Nothing of llama.cpp is part of this project: pass a
checkout of its public source, built by you (build/bin/llama-bench, llama-perplexity, llama-quantize),
and this script converts the Hugging Face directory that `chatbridge-bench decode --export-hf DIR`
wrote with that checkout's own convert_hf_to_gguf.py, then runs its tools and prints JSON with the
keys of chatbridge-bench, so bench/compare.py can alternate the two sides:

    bench/compare.py --workload W --parts decode --cpp-args '--llama-precision q4_0' \\
      --other 'bench/llama_cpp_peer.py decode --llama-cpp ~/llama.cpp --hf-dir /tmp/medium-hf --type q4_0 --workload {workload}'

Needs python3 with numpy, torch, sentencepiece and tqdm (Debian: python3-torch, python3-sentencepiece,
python3-tqdm).
"""
import argparse
import json
import os
import re
import resource
import runpy
import struct
import subprocess
import sys
from pathlib import Path

TYPES = {"fp32": "f32", "f32": "f32", "bf16": "bf16", "fp16": "f16", "f16": "f16", "q8_0": "q8_0", "q4_0": "q4_0"}


def read_safetensors(path):
    """name -> torch tensor, from a safetensors file (the convert script's reader needs the
    `safetensors` package, which Debian does not ship; a .bin written by torch.save needs nothing)."""
    import numpy as np
    import torch
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    dtypes = {"F32": (np.float32, None), "F16": (np.float16, None), "BF16": (np.uint16, torch.bfloat16),
              "I64": (np.int64, None)}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        np_dtype, view = dtypes[info["dtype"]]
        arr = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np_dtype).reshape(info["shape"])
        t = torch.from_numpy(arr.copy())
        out[name] = t.view(view) if view is not None else t
    return out


def as_bin_dir(hf_dir, work):
    """The HF directory with its safetensors weights rewritten as pytorch_model.bin."""
    import torch
    out = work / "hf-bin"
    if (out / "pytorch_model.bin").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    state = {}
    for f in sorted(Path(hf_dir).glob("*.safetensors")):
        state.update(read_safetensors(f))
    torch.save(state, out / "pytorch_model.bin")
    for f in ("config.json", "tokenizer.model"):
        (out / f).write_bytes((Path(hf_dir) / f).read_bytes())
    return out


def gguf_of(args, gtype):
    """<work>/model-<type>.gguf, converted once."""
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    target = work / f"model-{gtype}.gguf"
    if target.exists():
        return target
    cpp = Path(args.llama_cpp)
    # Written under a temporary name and renamed when complete: a conversion that fails part-way (a
    # missing Python module) must not leave a truncated file that the next run takes as converted.
    partial = work / f"model-{gtype}.gguf.partial"
    if gtype == "q4_0":  # the convert script writes up to q8_0; llama-quantize makes q4_0 from f32
        src = gguf_of(args, "f32")
        run_tool([str(cpp / "build/bin/llama-quantize"), "--pure", str(src), str(partial), "Q4_0"], target)
        partial.rename(target)
        return target
    src = as_bin_dir(args.hf_dir, work)
    code = (
        "import runpy, sys, torch\n"
        # torch 1.13 (Debian) lacks the float8 dtypes the convert script names in a table, and
        # torch.load's mmap argument.
        "for n in ('float8_e4m3fn', 'float8_e5m2'):\n"
        "    hasattr(torch, n) or setattr(torch, n, torch.uint8)\n"
        "_load = torch.load\n"
        "torch.load = lambda *a, mmap=None, **k: _load(*a, **k)\n"
        f"sys.path.insert(0, {str(cpp / 'gguf-py')!r})\n"
        f"sys.argv = ['convert_hf_to_gguf.py', {str(src)!r}, '--outtype', {gtype!r}, '--outfile', {str(partial)!r}]\n"
        f"runpy.run_path({str(cpp / 'convert_hf_to_gguf.py')!r}, run_name='__main__')\n")
    run_tool([sys.executable, "-c", code], target)
    partial.rename(target)
    return target


def run_tool(cmd, target):
    """Runs a conversion step quietly; on failure exits naming the file and showing the tool's last words."""
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if out.returncode != 0:
        sys.exit(f"llama_cpp_peer: making {target} failed (exit {out.returncode}):\n" + out.stdout[-2000:])


def workload_decode(path):
    w = json.loads(Path(path).read_text())["workload"]
    return w["threads"], w["decode"]["prompt_len"], w["decode"]["new_tokens"], w["decode"]["runs"]


def llama_bench(args, model, prompt, gen, runs, threads):
    cmd = [str(Path(args.llama_cpp) / "build/bin/llama-bench"), "-m", str(model), "-p", str(prompt), "-n", str(gen),
           "-t", str(threads), "-r", str(runs), "-o", "json"]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    return json.loads(out)[0]


def decode(args):
    threads, prompt, gen, runs = workload_decode(args.workload)
    threads = args.threads or threads
    model = gguf_of(args, TYPES[args.type])
    tg = llama_bench(args, model, 0, gen, runs, threads)    # token generation from an empty context
    pp = llama_bench(args, model, prompt, 0, runs, threads)  # prompt processing
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    print(json.dumps({"decode_tok_s": tg["avg_ts"], "decode_tok_s_best": max(tg["samples_ts"]),
                      "prefill_s": prompt / pp["avg_ts"], "prefill_s_min": prompt / max(pp["samples_ts"]),
                      "peak_rss_mb": rss, "type": args.type, "gguf": str(model),
                      "gguf_bytes": os.path.getsize(model), "llama_cpp_build": tg.get("build_commit")}))


def quality(args):
    """Mean KL divergence from the f32 model's token distributions and top-1 agreement, as
    llama-perplexity --kl-divergence reports them over args.text (chunks of --ctx tokens, the second
    half of each chunk scored)."""
    tool = str(Path(args.llama_cpp) / "build/bin/llama-perplexity")
    base = Path(args.work_dir) / f"base-{args.ctx}.kld"
    common = ["-f", args.text, "-c", str(args.ctx), "-t", str(args.threads or 2), "-b", str(args.ctx)]
    if not base.exists():
        subprocess.run([tool, "-m", str(gguf_of(args, "f32")), "--kl-divergence-base", str(base)] + common,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = subprocess.run([tool, "-m", str(gguf_of(args, TYPES[args.type])), "--kl-divergence-base", str(base),
                          "--kl-divergence"] + common, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True).stdout
    kld = re.search(r"Mean\s+KLD:\s+([-0-9.e]+)", out)
    top = re.search(r"Same top p:\s+([0-9.]+)", out)
    if not kld or not top:
        sys.exit("llama_cpp_peer: llama-perplexity printed no KLD summary:\n" + out[-2000:])
    print(json.dumps({"type": args.type, "mean_kld": float(kld.group(1)), "top1_agreement": float(top.group(1)) / 100,
                      "ctx": args.ctx}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["decode", "quality"])
    ap.add_argument("--llama-cpp", required=True, help="a llama.cpp checkout built in its build/ folder")
    ap.add_argument("--hf-dir", required=True, help="the weights, as chatbridge-bench decode --export-hf wrote them")
    ap.add_argument("--type", required=True, choices=sorted(TYPES))
    ap.add_argument("--work-dir", default="/tmp/chatbridge-llama-cpp-peer", help="converted GGUF files (reused)")
    ap.add_argument("--workload", help="decode: the workload JSON (threads, prompt_len, new_tokens, runs)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--text", help="quality: the text file scored")
    ap.add_argument("--ctx", type=int, default=128, help="quality: tokens per chunk")
    a = ap.parse_args()
    if a.mode == "decode":
        if not a.workload:
            ap.error("decode needs --workload")
        decode(a)
    else:
        if not a.text:
            ap.error("quality needs --text")
        quality(a)


if __name__ == "__main__":
    main()
