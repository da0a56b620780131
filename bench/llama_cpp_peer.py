#!/usr/bin/env python3
"""llama.cpp as the peer of `chatbridge-bench decode` and `chatbridge-bench quality` on the same weights
(docs/benchmarks.md, "llama.cpp side by side"). Nothing of llama.cpp is part of this project: pass a
checkout of its public source, built by you (build/bin/llama-bench, llama-perplexity, llama-quantize),
and this script converts the Hugging Face directory that `chatbridge-bench decode --export-hf DIR`
wrote with that checkout's own convert_hf_to_gguf.py, then runs its tools and prints JSON with the
keys of chatbridge-bench, so bench/compare.py can alternate the two sides:

    bench/compare.py --workload W --parts decode --cpp-args '--llama-precision q4_0' \\
      --other 'bench/llama_cpp_peer.py decode --llama-cpp ~/llama.cpp --hf-dir /tmp/medium-hf --type q4_0 --workload {workload}'

`real-size` runs llama.cpp on the very weights of a q8_0/q4_0 directory that `chatbridge-bench
real-size --make` (or `chatbridge-convert --quantize`) wrote: the packed blocks are llama.cpp's
Q8_0/Q4_0 blocks byte for byte, so they are copied into a GGUF file as they are (no fp16 directory,
no requantization), with the vocabulary of --hf-dir's tokenizer.model:

    bench/llama_cpp_peer.py real-size --llama-cpp ~/llama.cpp --hf-dir /tmp/medium-hf --packed-dir /tmp/llama13b-q4_0

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


def safetensors_arrays(path):
    """name -> (safetensors dtype, numpy array mapped from the file, not read; BF16 as int16 bits). The
    convert script's reader needs the `safetensors` package, which Debian does not ship."""
    import numpy as np
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    np_dtypes = {"U8": np.uint8, "F16": np.float16, "BF16": np.int16, "F32": np.float32, "I64": np.int64}
    out = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        dtype = np_dtypes[t["dtype"]]
        out[name] = (t["dtype"], np.memmap(path, dtype=dtype, mode="r", offset=8 + n + begin, shape=tuple(t["shape"]))
                     if end > begin else np.zeros(t["shape"], dtype=dtype))
    return out


def read_safetensors(path):
    """name -> torch tensor, from a safetensors file (a .bin written by torch.save needs nothing to
    convert)."""
    import numpy as np
    import torch
    out = {}
    for name, (dtype, a) in safetensors_arrays(path).items():
        t = torch.from_numpy(np.array(a))
        out[name] = t.view(torch.bfloat16) if dtype == "BF16" else t
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


def unpermute_rows(w, heads):
    """HF's q/k rows (the two halves of each head's rotary pairs apart) in llama.cpp's order (pairs
    adjacent), as its convert script permutes them; on packed rows too, since a row's blocks stay whole."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_of_packed(args):
    """<work>/<packed dir name>.gguf: the directory's packed projections copied block for block."""
    import numpy as np
    sys.path.insert(0, str(Path(args.llama_cpp) / "gguf-py"))
    import gguf
    from sentencepiece import SentencePieceProcessor
    src = Path(args.packed_dir)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    target = work / f"{src.name}.gguf"
    if target.exists():
        return target
    cfg = json.loads((src / "config.json").read_text())
    fmt = cfg.get("quantization_config", {}).get("weight_format")
    qtypes = {"q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
              "q4_0": (gguf.GGMLQuantizationType.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0)}
    if fmt not in qtypes:
        sys.exit(f"llama_cpp_peer: {src / 'config.json'}: quantization_config.weight_format is {fmt!r}, "
                 "not q8_0 or q4_0")
    qtype, ftype = qtypes[fmt]
    heads, layers = cfg["num_attention_heads"], cfg["num_hidden_layers"]
    partial = work / f"{src.name}.gguf.partial"
    w = gguf.GGUFWriter(str(partial), "llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(layers)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(cfg.get("num_key_value_heads", heads))
    w.add_rope_dimension_count(cfg["hidden_size"] // heads)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(ftype)
    sp = SentencePieceProcessor(model_file=str(Path(args.hf_dir) / "tokenizer.model"))
    n, vocab = sp.vocab_size(), cfg["vocab_size"]
    if n > vocab:
        sys.exit(f"llama_cpp_peer: {args.hf_dir}/tokenizer.model has {n} pieces, more than the vocab of "
                 f"{vocab} in {src / 'config.json'}")
    types = gguf.TokenType
    w.add_tokenizer_model("llama")
    # Embedding rows past the tokenizer's pieces get unused placeholder tokens, as llama.cpp's converter does.
    w.add_token_list([sp.id_to_piece(i).encode() for i in range(n)] + [f"[PAD{i}]".encode() for i in range(n, vocab)])
    w.add_token_scores([sp.get_score(i) for i in range(n)] + [-1000.0] * (vocab - n))
    w.add_token_types([types.UNKNOWN if sp.is_unknown(i) else types.CONTROL if sp.is_control(i) else
                       types.UNUSED if sp.is_unused(i) else types.BYTE if sp.is_byte(i) else types.NORMAL
                       for i in range(n)] + [types.UNUSED] * (vocab - n))
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for i in range(layers):
        names.update({f"model.layers.{i}.{k}.weight": f"blk.{i}.{v}.weight" for k, v in per_layer.items()})
    for shard in sorted(src.glob("*.safetensors")):
        for name, (dtype, a) in safetensors_arrays(shard).items():
            if name.endswith("rotary_emb.inv_freq"):
                continue  # llama.cpp computes the rotary frequencies from the metadata
            if name not in names:
                sys.exit(f"llama_cpp_peer: {shard}: tensor {name} has no llama.cpp name")
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                a = unpermute_rows(a, heads)
            if dtype == "U8":
                w.add_tensor(names[name], np.ascontiguousarray(a), raw_dtype=qtype)
            elif a.ndim == 1:
                w.add_tensor(names[name], np.asarray(a, dtype=np.float32))  # norms: llama.cpp keeps them f32
            else:
                w.add_tensor(names[name], a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
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
    # llama.cpp's prompt processing computes the last position's logits only, as generate()'s prefill
    # does (chatbridge-bench's prefill_s computes all of them, as the original does).
    print(json.dumps({"decode_tok_s": tg["avg_ts"], "decode_tok_s_best": max(tg["samples_ts"]),
                      "prefill_generate_s": prompt / pp["avg_ts"],
                      "prefill_generate_s_min": prompt / max(pp["samples_ts"]),
                      "peak_rss_mb": rss, "type": args.type, "gguf": str(model),
                      "gguf_bytes": os.path.getsize(model), "llama_cpp_build": tg.get("build_commit")}))


def real_size(args):
    """llama.cpp's figures for `chatbridge-bench real-size` on the same packed weights: prefill of
    --prompt tokens and --new-tokens decoded, each --runs times, and the peak RSS of its processes."""
    model = gguf_of_packed(args)
    threads = args.threads or os.cpu_count()
    tg = llama_bench(args, model, 0, args.new_tokens, args.runs, threads)
    pp = llama_bench(args, model, args.prompt, 0, args.runs, threads)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0 ** 2
    print(json.dumps({"decode_tok_s": tg["avg_ts"], "decode_tok_s_best": max(tg["samples_ts"]),
                      "prefill_generate_s": args.prompt / pp["avg_ts"], "peak_rss_gb": rss, "gguf": str(model),
                      "gguf_gb": os.path.getsize(model) / 1e9, "llama_cpp_build": tg.get("build_commit")}))


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
    ap.add_argument("mode", choices=["decode", "quality", "real-size"])
    ap.add_argument("--llama-cpp", required=True, help="a llama.cpp checkout built in its build/ folder")
    ap.add_argument("--hf-dir", required=True, help="the weights, as chatbridge-bench decode --export-hf wrote them "
                    "(real-size: only its tokenizer.model)")
    ap.add_argument("--type", choices=sorted(TYPES), help="decode, quality: the GGUF type")
    ap.add_argument("--packed-dir", help="real-size: a q8_0/q4_0 directory (chatbridge-bench real-size --make)")
    ap.add_argument("--prompt", type=int, default=32, help="real-size: prompt tokens")
    ap.add_argument("--new-tokens", type=int, default=16, help="real-size: tokens decoded")
    ap.add_argument("--runs", type=int, default=3, help="real-size: repetitions")
    ap.add_argument("--work-dir", default="/tmp/chatbridge-llama-cpp-peer", help="converted GGUF files (reused)")
    ap.add_argument("--workload", help="decode: the workload JSON (threads, prompt_len, new_tokens, runs)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--text", help="quality: the text file scored")
    ap.add_argument("--ctx", type=int, default=128, help="quality: tokens per chunk")
    a = ap.parse_args()
    if a.mode != "real-size" and not a.type:
        ap.error(f"{a.mode} needs --type")
    if a.mode == "real-size":
        if not a.packed_dir:
            ap.error("real-size needs --packed-dir")
        real_size(a)
    elif a.mode == "decode":
        if not a.workload:
            ap.error("decode needs --workload")
        decode(a)
    else:
        if not a.text:
            ap.error("quality needs --text")
        quality(a)


if __name__ == "__main__":
    main()
