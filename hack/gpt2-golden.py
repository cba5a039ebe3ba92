#!/usr/bin/env python3
# Copyright 2026 The aivm-operator Authors. Licensed under the Apache License 2.0.
#
# Writes the PyTorch golden for the builtin engine
# (runtime-image/engine/builtin/testdata/torch-gpt2/): a small seeded GPT-2
# snapshot (config.json, model.safetensors written by hand, a byte-level
# vocabulary) and golden.json with the logits of every position of a few
# prompts and their greedy continuations, computed with torch's own
# operators (layer_norm, tanh GELU, softmax, matmul).
#
# Needs Debian's python3-torch (apt-get install python3-torch); not run by CI.
# Usage: /usr/bin/python3 hack/gpt2-golden.py [outdir]
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

OUT = sys.argv[1] if len(sys.argv) > 1 else "runtime-image/engine/builtin/testdata/torch-gpt2"
N_LAYER, N_HEAD, N_EMBD, N_POS = 2, 4, 32, 64
SCALE = 0.2  # GPT-2's 0.02 makes a random model repeat one token
EPS = 1e-5
GREEDY_TOKENS = 16
PROMPTS = ["Hello, world! The", "The quick brown fox", "日本語 and émoji 🎉"]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return bs, [chr(c) for c in cs]


def main():
    torch.manual_seed(20261201)
    order, chars = bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab["<|endoftext|>"] = len(vocab)
    V = len(vocab)

    def rnd(*shape, center=0.0, scale=SCALE):
        return (torch.randn(*shape) * scale + center).float()

    E = N_EMBD
    w = {
        "wte.weight": rnd(V, E),
        "wpe.weight": rnd(N_POS, E, scale=SCALE / 2),
        "ln_f.weight": rnd(E, center=1.0, scale=0.1),
        "ln_f.bias": rnd(E, scale=0.1),
    }
    for l in range(N_LAYER):
        p = f"h.{l}."
        w[p + "ln_1.weight"] = rnd(E, center=1.0, scale=0.1)
        w[p + "ln_1.bias"] = rnd(E, scale=0.1)
        w[p + "attn.c_attn.weight"] = rnd(E, 3 * E)
        w[p + "attn.c_attn.bias"] = rnd(3 * E, scale=SCALE / 2)
        w[p + "attn.c_proj.weight"] = rnd(E, E)
        w[p + "attn.c_proj.bias"] = rnd(E, scale=SCALE / 2)
        w[p + "ln_2.weight"] = rnd(E, center=1.0, scale=0.1)
        w[p + "ln_2.bias"] = rnd(E, scale=0.1)
        w[p + "mlp.c_fc.weight"] = rnd(E, 4 * E)
        w[p + "mlp.c_fc.bias"] = rnd(4 * E, scale=SCALE / 2)
        w[p + "mlp.c_proj.weight"] = rnd(4 * E, E)
        w[p + "mlp.c_proj.bias"] = rnd(E, scale=SCALE / 2)

    def forward(ids):
        T = len(ids)
        x = w["wte.weight"][ids] + w["wpe.weight"][:T]
        hd = E // N_HEAD
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        for l in range(N_LAYER):
            p = f"h.{l}."
            h = F.layer_norm(x, (E,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], EPS)
            qkv = torch.matmul(h, w[p + "attn.c_attn.weight"]) + w[p + "attn.c_attn.bias"]
            q, k, v = qkv.split(E, dim=-1)
            q, k, v = (t.view(T, N_HEAD, hd).transpose(0, 1) for t in (q, k, v))
            att = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)
            att = att.masked_fill(mask, float("-inf"))
            att = torch.softmax(att, dim=-1)
            a = torch.matmul(att, v).transpose(0, 1).reshape(T, E)
            x = x + torch.matmul(a, w[p + "attn.c_proj.weight"]) + w[p + "attn.c_proj.bias"]
            h = F.layer_norm(x, (E,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], EPS)
            f = F.gelu(torch.matmul(h, w[p + "mlp.c_fc.weight"]) + w[p + "mlp.c_fc.bias"], approximate="tanh")
            x = x + torch.matmul(f, w[p + "mlp.c_proj.weight"]) + w[p + "mlp.c_proj.bias"]
        x = F.layer_norm(x, (E,), w["ln_f.weight"], w["ln_f.bias"], EPS)
        return torch.matmul(x, w["wte.weight"].t())

    cases = []
    min_margin = float("inf")
    with torch.no_grad():
        for text in PROMPTS:
            ids = [order.index(b) for b in text.encode("utf-8")]
            logits = forward(ids)
            seq = list(ids)
            for _ in range(GREEDY_TOKENS):
                last = forward(seq)[-1]
                top2 = torch.topk(last, 2).values
                min_margin = min(min_margin, float(top2[0] - top2[1]))
                seq.append(int(torch.argmax(last)))
            cases.append({
                "prompt": text,
                "ids": ids,
                "logits": [[float("%.7g" % v) for v in row] for row in logits.tolist()],
                "greedy": seq[len(ids):],
            })

    os.makedirs(OUT, exist_ok=True)
    # safetensors by hand: u64 LE header length, JSON header, raw LE data.
    # The "transformer." prefix is what GPT2LMHeadModel checkpoints carry.
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(w):
        t = w[name].contiguous()
        data = struct.pack("<%df" % t.numel(), *t.flatten().tolist())
        header["transformer." + name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(os.path.join(OUT, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump({"model_type": "gpt2", "activation_function": "gelu_new", "n_layer": N_LAYER, "n_head": N_HEAD,
                   "n_embd": N_EMBD, "n_positions": N_POS, "vocab_size": V, "layer_norm_epsilon": EPS}, f, indent=2)
    with open(os.path.join(OUT, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(OUT, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump({"torch": torch.__version__, "minGreedyMargin": min_margin, "cases": cases}, f)
        f.write("\n")
    print("wrote", OUT, "min top-1/top-2 margin along greedy paths: %.4g" % min_margin)


if __name__ == "__main__":
    main()
