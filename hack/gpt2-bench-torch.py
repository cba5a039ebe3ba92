#!/usr/bin/env python3
# Copyright 2026 The aivm-operator Authors. Licensed under the Apache License 2.0.
#
# PyTorch's speed on GPT-2 small's shape (124M parameters, random F32
# weights), for the ratio docs/benchmarks.md reports next to the
# builtin engine's BenchmarkGenerate and BenchmarkPrompt: the same work
# (greedy generation with a KV cache after a 16-token prompt; one
# 128-token prompt), on the same number of threads.
#
# Needs Debian's python3-torch. Usage: /usr/bin/python3 hack/gpt2-bench-torch.py [threads]
import math
import sys
import time

import torch
import torch.nn.functional as F

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
L, H, E, P, V = 12, 12, 768, 1024, 50257
torch.set_num_threads(THREADS)
torch.manual_seed(1)


def rnd(*s):
    return torch.randn(*s) * 0.2


W = {"wte": rnd(V, E), "wpe": rnd(P, E), "lnf": (torch.ones(E), torch.zeros(E)), "layers": []}
for _ in range(L):
    W["layers"].append(dict(ln1=(torch.ones(E), torch.zeros(E)), attn=(rnd(E, 3 * E), rnd(3 * E)),
                            proj=(rnd(E, E), rnd(E)), ln2=(torch.ones(E), torch.zeros(E)),
                            fc=(rnd(E, 4 * E), rnd(4 * E)), fc2=(rnd(4 * E, E), rnd(E))))


def forward(ids, cache, pos):
    T, hd = len(ids), E // H
    x = W["wte"][ids] + W["wpe"][pos:pos + T]
    for l, p in enumerate(W["layers"]):
        h = F.layer_norm(x, (E,), *p["ln1"])
        q, k, v = (torch.addmm(p["attn"][1], h, p["attn"][0])).split(E, dim=-1)
        k = torch.cat([cache[l][0], k]) if cache[l] else k
        v = torch.cat([cache[l][1], v]) if cache[l] else v
        cache[l] = (k, v)
        q, kk, vv = (t.view(-1, H, hd).transpose(0, 1) for t in (q, k, v))
        att = torch.matmul(q, kk.transpose(-1, -2)) / math.sqrt(hd)
        if T > 1:
            att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1 + pos)[:, :kk.shape[1]], float("-inf"))
        a = torch.matmul(torch.softmax(att, -1), vv).transpose(0, 1).reshape(T, E)
        x = x + torch.addmm(p["proj"][1], a, p["proj"][0])
        h = F.layer_norm(x, (E,), *p["ln2"])
        x = x + torch.addmm(p["fc2"][1], F.gelu(torch.addmm(p["fc"][1], h, p["fc"][0]), approximate="tanh"), p["fc2"][0])
    x = F.layer_norm(x[-1:], (E,), *W["lnf"])
    return torch.matmul(x, W["wte"].t())[0]


with torch.no_grad():
    ids = torch.randint(0, V, (128,)).tolist()
    forward(ids[:16], [None] * L, 0)  # warm up
    t0 = time.perf_counter()
    for _ in range(3):
        forward(ids, [None] * L, 0)
    prompt = 3 * 128 / (time.perf_counter() - t0)
    gen_tokens, elapsed = 0, 0.0
    for _ in range(2):
        cache = [None] * L
        logits = forward(ids[:16], cache, 0)
        t0 = time.perf_counter()
        for i in range(32):
            logits = forward([int(torch.argmax(logits))], cache, 16 + i)
        elapsed += time.perf_counter() - t0
        gen_tokens += 32
    print("torch %s, %d threads: generation %.1f tokens/s, prompt %.1f tokens/s" % (torch.__version__, THREADS, gen_tokens / elapsed, prompt))
