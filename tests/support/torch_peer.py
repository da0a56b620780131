"""PyTorch as a peer for the torch.save tests: Debian's python3-torch (1.13) reads and writes the files
our writer and reader handle. Run with /usr/bin/python3 (a python3 elsewhere on PATH may lack torch).

  torch_peer.py describe FILE            the object torch.load returns, as JSON (tensors: dtype, shape, values)
  torch_peer.py resave IN OUT            torch.load(IN), then torch.save of it to OUT
  torch_peer.py load-model FILE SPEC     a module with SPEC's parameters ({"name": shape}, in order) loads
                                         checkpoint["model"] (strict=False), an AdamW over it the "optimizer"
Every command prints one line "TORCH_PEER_JSON <json>" (PyTorch may print warnings around it); an error
ends it with a traceback and a non-zero exit.
"""
import json
import sys

import torch


def describe(v):
    if isinstance(v, torch.Tensor):
        return {"tensor": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
                "values": v.detach().double().flatten().tolist()}
    if isinstance(v, dict):
        return {"dict": "OrderedDict" if type(v).__name__ == "OrderedDict" else "dict",
                "items": [[describe(k), describe(x)] for k, x in v.items()]}
    if isinstance(v, (list, tuple)):
        return {type(v).__name__: [describe(x) for x in v]}
    if v is None or isinstance(v, (bool, int, str)):
        return {type(v).__name__: v}
    if isinstance(v, float):
        return {"float": repr(v)}
    raise TypeError(f"unexpected {type(v).__name__}")


def module_with(spec):
    root = torch.nn.Module()
    for name, shape in spec.items():
        *path, leaf = name.split(".")
        m = root
        for part in path:
            if not hasattr(m, part):
                m.add_module(part, torch.nn.Module())
            m = getattr(m, part)
        m.register_parameter(leaf, torch.nn.Parameter(torch.full(shape, float("nan"))))
    return root


def load_model(path, spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    ckpt = torch.load(path, map_location="cpu")
    model = module_with(spec)
    report = model.load_state_dict(ckpt["model"], strict=False)
    sd = ckpt["model"]
    values_equal = all(torch.equal(p, sd[n]) for n, p in model.named_parameters() if n in sd)
    # The optimizer over the checkpoint's parameters (the trainable ones), in the order of "model".
    named = dict(model.named_parameters())
    params = [named[n] for n in sd if n in named]
    opt = torch.optim.AdamW(params, lr=1.0)
    opt.load_state_dict(ckpt["optimizer"])
    moments_equal = all(torch.equal(opt.state[params[i]]["exp_avg"], s["exp_avg"]) and
                        torch.equal(opt.state[params[i]]["exp_avg_sq"], s["exp_avg_sq"])
                        for i, s in ckpt["optimizer"]["state"].items())
    return {"keys": sorted(ckpt.keys()), "missing": report.missing_keys, "unexpected": report.unexpected_keys,
            "values_equal": values_equal, "optimizer_states": len(opt.state), "moments_equal": moments_equal,
            "steps": [float(s["step"]) for s in ckpt["optimizer"]["state"].values()],
            "lr": opt.param_groups[0]["lr"], "weight_decay": opt.param_groups[0]["weight_decay"],
            "epoch": ckpt["epoch"], "scaler": ckpt["scaler"], "config_run": ckpt["config"]["run"]}


def main():
    cmd = sys.argv[1]
    if cmd == "describe":
        out = describe(torch.load(sys.argv[2], map_location="cpu"))
    elif cmd == "resave":
        torch.save(torch.load(sys.argv[2], map_location="cpu"), sys.argv[3])
        out = {"ok": True}
    elif cmd == "load-model":
        out = load_model(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown command {cmd}")
    print("TORCH_PEER_JSON " + json.dumps(out))


if __name__ == "__main__":
    main()
