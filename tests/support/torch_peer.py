"""PyTorch as a peer: Debian's python3-torch (1.13) reads and writes the files our torch.save writer and
reader handle, and computes the torch/numpy steps a processor must reproduce. Run with /usr/bin/python3
(a python3 elsewhere on PATH may lack torch).

  torch_peer.py describe FILE            the object torch.load returns, as JSON (tensors: dtype, shape, values)
  torch_peer.py resave IN OUT            torch.load(IN), then torch.save of it to OUT
  torch_peer.py load-model FILE SPEC     a module with SPEC's parameters ({"name": shape}, in order) loads
                                         checkpoint["model"] (strict=False), an AdamW over it the "optimizer"
  torch_peer.py alpro-clip SPEC          alpro_video_train's steps after decoding, given its draws, without
                                         the RandomAugment ops: SPEC {"frames": [n, s, s, 3] uint8 values,
                                         "shape", "box": [top, left, h, w], "hflip", "size", "mean", "std"}
  torch_peer.py crop-flip SPEC           the valor VideoMapper's video_transforms 'crop_flip' as torchvision's
                                         tensor ops compute it (no antialias): SPEC {"frames", "shape" [n, H,
                                         W, 3], "training", "box", "hflip" (training), "size", "mean", "std"}
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


def alpro_clip(spec_path):
    import numpy as np
    with open(spec_path) as f:
        spec = json.load(f)
    frames = torch.tensor(spec["frames"], dtype=torch.uint8).view(spec["shape"])
    clip = frames.permute(3, 0, 1, 2).float()  # load_video: (C, T, H, W)
    top, left, h, w = spec["box"]
    clip = clip[..., top:top + h, left:left + w]  # RandomResizedCropVideo: crop, then resize
    size = spec["size"]
    clip = torch.nn.functional.interpolate(clip, size=(size, size), mode="bicubic", align_corners=False)
    if spec["hflip"]:
        clip = clip.flip(-1)
    thwc = clip.permute(1, 2, 3, 0)  # ToTHWC
    wrapped = int(((thwc < 0) | (thwc >= 256)).sum())
    frames = torch.from_numpy(thwc.numpy().astype(np.uint8))  # VideoRandomAugment's cast
    x = frames.to(torch.uint8).float().permute(3, 0, 1, 2) / 255.0  # ToUint8, ToTensorVideo
    mean = torch.as_tensor(spec["mean"], dtype=x.dtype)
    std = torch.as_tensor(spec["std"], dtype=x.dtype)
    x = x.sub_(mean[:, None, None, None]).div_(std[:, None, None, None])  # NormalizeVideo
    return {"shape": list(x.shape), "values": x.flatten().tolist(), "wrapped": wrapped}


def crop_flip(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    # ToTensor of each frame (a contiguous [3, H, W]), then torch.cat: [n, 3, H, W]
    x = torch.tensor(spec["frames"], dtype=torch.uint8).view(spec["shape"]).permute(0, 3, 1, 2).contiguous()
    x = x.float() / 255
    size = spec["size"]
    resize = lambda t, hw: torch.nn.functional.interpolate(t, size=hw, mode="bilinear", align_corners=False)
    if spec["training"]:  # RandomResizedCrop(size, [0.8, 1], [1, 1]) at the given box, RandomHorizontalFlip
        top, left, h, w = spec["box"]
        x = resize(x[..., top:top + h, left:left + w], [size, size])
        if spec["hflip"]:
            x = x.flip(-1)
    else:  # Resize(size): torchvision's _compute_resized_output_size; CenterCrop(size)
        h, w = x.shape[-2:]
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = size, int(size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        if (new_h, new_w) != (h, w):
            x = resize(x, [new_h, new_w])
        top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
        x = x[..., top:top + size, left:left + size]
    mean = torch.as_tensor(spec["mean"], dtype=x.dtype).view(-1, 1, 1)
    std = torch.as_tensor(spec["std"], dtype=x.dtype).view(-1, 1, 1)
    x = x.sub(mean).div(std)  # Normalize
    return {"shape": list(x.shape), "values": x.flatten().tolist()}


def main():
    cmd = sys.argv[1]
    if cmd == "describe":
        out = describe(torch.load(sys.argv[2], map_location="cpu"))
    elif cmd == "resave":
        torch.save(torch.load(sys.argv[2], map_location="cpu"), sys.argv[3])
        out = {"ok": True}
    elif cmd == "load-model":
        out = load_model(sys.argv[2], sys.argv[3])
    elif cmd == "alpro-clip":
        out = alpro_clip(sys.argv[2])
    elif cmd == "crop-flip":
        out = crop_flip(sys.argv[2])
    else:
        raise SystemExit(f"unknown command {cmd}")
    print("TORCH_PEER_JSON " + json.dumps(out))


if __name__ == "__main__":
    main()
