#!/usr/bin/env python3
"""Same-machine Python anchor for `chatbridge-bench decode` (docs/benchmarks.md, decode).

The original's published figures were measured on another machine (AVX-512); ratios only mean
something side by side. transformers is not packaged for Debian 12, so this script
restates, in plain PyTorch (Debian's python3-torch 1.13.1, the original's version), the tensor ops
transformers 4.28's LlamaForCausalLM runs when ChatBridge generates from inputs_embeds: nn.Linear
projections, RMSNorm in fp32, rotary embeddings gathered by position ids, the expanded causal mask,
fp32 softmax, the KV cache grown by torch.cat, logits over every prompt position. Same workload,
same protocol (warm-up runs, timed runs, medians), one JSON object on stdout.

    python3 bench/python/decode_reference.py tests/bench/small.json
"""
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c["num_attention_heads"]
        self.dim = c["hidden_size"] // self.heads
        h = c["hidden_size"]
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(h, h, bias=False) for _ in range(4))

    def forward(self, x, cos, sin, mask, past):
        b, l, _ = x.shape
        q = self.q_proj(x).view(b, l, self.heads, self.dim).transpose(1, 2)
        k = self.k_proj(x).view(b, l, self.heads, self.dim).transpose(1, 2)
        v = self.v_proj(x).view(b, l, self.heads, self.dim).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.dim)
        w = torch.max(w + mask, torch.tensor(torch.finfo(w.dtype).min))
        w = nn.functional.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(w, v).transpose(1, 2).reshape(b, l, -1)
        return self.o_proj(o), (k, v)


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, i = c["hidden_size"], c["intermediate_size"]
        self.self_attn = Attention(c)
        self.gate_proj, self.up_proj = nn.Linear(h, i, bias=False), nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)
        self.input_layernorm = RMSNorm(h, c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(h, c["rms_norm_eps"])

    def forward(self, x, cos, sin, mask, past):
        a, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, past)
        x = x + a
        y = self.post_attention_layernorm(x)
        return x + self.down_proj(nn.functional.silu(self.gate_proj(y)) * self.up_proj(y)), present


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        dim = c["hidden_size"] // c["num_attention_heads"]
        inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
        freqs = torch.einsum("i,j->ij", torch.arange(c["max_position_embeddings"]).float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos_cached, self.sin_cached = emb.cos(), emb.sin()
        for m in self.modules():  # transformers' _init_weights
            if isinstance(m, (nn.Linear, nn.Embedding)):
                m.weight.data.normal_(0.0, c["initializer_range"])

    def forward(self, embeds, attention_mask, position_ids, past):
        b, l, _ = embeds.shape
        t = attention_mask.shape[1]
        mn = torch.finfo(embeds.dtype).min
        mask = torch.zeros(b, 1, l, t)
        if l > 1:
            causal = torch.full((l, l), mn).triu(1)
            mask = mask + torch.cat([torch.zeros(l, t - l), causal], dim=-1)
        mask = mask.masked_fill(attention_mask[:, None, None, :] == 0, mn)
        cos = self.cos_cached[position_ids].unsqueeze(1)
        sin = self.sin_cached[position_ids].unsqueeze(1)
        h, presents = embeds, []
        for i, layer in enumerate(self.layers):
            h, p = layer(h, cos, sin, mask, past[i] if past else None)
            presents.append(p)
        return self.lm_head(self.norm(h)), presents


def main():
    w = json.load(open(sys.argv[1]))
    d, c = w["workload"]["decode"], w["config"]["tiny_dims"]["llama_config"]
    torch.set_num_threads(w["workload"]["threads"])
    torch.manual_seed(w["workload"]["seed"])
    model = Llama(c).eval()
    b, p, n = d["batch_size"], d["prompt_len"], d["new_tokens"]
    ids = (3 + (17 * torch.arange(p) + 5) % 997).expand(b, p)

    def run():
        with torch.no_grad():
            t0 = time.perf_counter()
            mask = torch.ones(b, p, dtype=torch.long)
            logits, past = model(model.embed_tokens(ids), mask, torch.arange(p).expand(b, p), None)
            nxt = logits[:, -1, :].argmax(-1)
            t1 = time.perf_counter()
            seq = torch.cat([ids, nxt[:, None]], 1)
            mask = torch.ones(b, p + 1, dtype=torch.long)
            for _ in range(n):
                pos = torch.full((b, 1), seq.shape[1] - 1)
                logits, past = model(model.embed_tokens(nxt[:, None]), mask, pos, past)
                nxt = logits[:, -1, :].argmax(-1)
                seq = torch.cat([seq, nxt[:, None]], 1)
                mask = torch.cat([mask, torch.ones(b, 1, dtype=torch.long)], 1)
            return t1 - t0, time.perf_counter() - t1

    for _ in range(d["warmup_runs"]):
        run()
    prefill, decode = zip(*(run() for _ in range(d["runs"])))
    print(json.dumps({
        "workload": w["name"], "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "decode_tok_s": b * n / statistics.median(decode), "decode_tok_s_best": b * n / min(decode),
        "prefill_s": statistics.median(prefill), "prefill_s_min": min(prefill),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
