#!/usr/bin/env python3
"""Does a trained ChatBridge use its media? End-to-end checks on the embedded tiny dataset, through the
real binaries (chatbridge-train, chatbridge-eval, chatbridge-chat), seeded:

  stage0   the tiny LLaMA as a causal LM on the dataset's text (the frozen LLM the others share)
  images   stage 1 on the 12 images: greedy captions of every image through the eval path match its own
           caption (>= 10 of 12); the same images listed in another order give the same caption per
           image (the output follows the image, not its position); a run trained on deranged pairs
           (each image with another image's caption) writes almost none of the true captions and
           mostly the captions it was trained on; chat and eval answer alike for the same checkpoint,
           image and prompt
  audio    the same on the 13 clips (>= 10 right), without the chat check
  videos   the same on the 5 clips (>= 4 right), without the chat check

Single process, seeded (--seed; ctest runs images with seeds 42 and 7). The thresholds leave room for
one or two near-identical items (the spoken "front left" / "rear left" clips); a model that ignores
its media writes one or two captions for all and fails every check.

  conditioning.py --bin BUILD/bin --work DIR [--seed N] PHASE
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGES = "stage1_caption_images.json"
VIDEOS = "stage1_caption_videos.json"
AUDIOS = "stage1_caption_audios.json"


def run(cmd, log):
    with open(log, "w") as f:
        r = subprocess.run(cmd, cwd=ARGS.work, stdout=f, stderr=subprocess.STDOUT,
                           env={**os.environ, "CHATBRIDGE_CACHE_ROOT": ARGS.work})
    if r.returncode != 0:
        sys.stdout.write(open(log).read()[-4000:])
        sys.exit(f"conditioning: {' '.join(cmd[:1])} failed (exit {r.returncode}), log {log}")


def binary(name):
    return os.path.join(ARGS.bin, "chatbridge-" + name)


def tiny_data():
    return os.path.join(ARGS.work, "tiny_data")


def stage0():
    os.makedirs(ARGS.work, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(SOURCE, "scripts/make-tiny-data"), tiny_data()], check=True,
                   stdout=subprocess.DEVNULL)
    out = os.path.join(ARGS.work, "stage0")
    shutil.rmtree(out, ignore_errors=True)
    # The tiny configs read tiny_data/... relative to the working directory: point them at this copy.
    opts = []
    for cfg in ("train_configs/tiny_pretrain_data.json", "instructiontuning_configs/tiny_instruct_data.json"):
        opts.append(data_options(os.path.join(SOURCE, cfg), os.path.basename(cfg), keep=None))
    run([binary("train"), "--threads", str(ARGS.threads), "--cfg-path",
         os.path.join(SOURCE, "train_configs/tiny_lm_pretrain.yaml"), "--options", f"run.output_dir={out}",
         f"run.seed={ARGS.seed}", f"run.lm_data_opts_paths=[{','.join(opts)}]",
         f"run.prompt_path={os.path.join(SOURCE, 'instructiontuning_configs/task_prompt.json')}",
         f"model.llama_tokenizer={os.path.join(SOURCE, 'tests/golden/tokenizer.model')}"],
        os.path.join(ARGS.work, "stage0.log"))
    print(f"stage 0: {out}/llama")


def data_options(template, name, keep, annotation=None):
    """A copy of a data-options JSON with its paths under this work dir's tiny_data; `keep` selects the
    groups by task ("ti", "ta"; None keeps all) and datatype, `annotation` replaces their annotation file."""
    opts = json.load(open(template))
    groups = []
    for g in opts["data_cfg"]["train"]:
        if keep is not None and (g["task"] != keep[0] or any(d["datatype"] != keep[1] for d in g["datasets"])):
            continue
        for d in g["datasets"]:
            for key in ("txt", "video", "audio"):
                if key in d:
                    d[key] = os.path.join(ARGS.work, d[key])
            if annotation:
                d["txt"] = annotation
        groups.append(g)
    opts["data_cfg"]["train"] = groups
    path = os.path.join(ARGS.work, name)
    json.dump(opts, open(path, "w"), indent=1)
    return path


def train_stage1(name, keep, steps, annotation=None):
    name = f"{name}-seed{ARGS.seed}"
    out = os.path.join(ARGS.work, name)
    shutil.rmtree(out, ignore_errors=True)
    opts = data_options(os.path.join(SOURCE, "train_configs/tiny_pretrain_data.json"), name + "_data.json", keep,
                        annotation)
    run([binary("train"), "--threads", str(ARGS.threads), "--cfg-path",
         os.path.join(SOURCE, "train_configs/tiny_pretrain.yaml"), "--options", f"run.output_dir={out}",
         f"run.seed={ARGS.seed}", f"run.valor_data_opts_path={opts}", f"model.llama_model={llama()}",
         "run.max_epoch=1", f"run.iters_per_epoch={steps}", f"run.save_every_iters={steps}", "run.distributed=false"],
        os.path.join(ARGS.work, name + ".log"))
    ckpts = sorted(d for d in os.listdir(os.path.join(out, "checkpoints")) if d.startswith("step_"))
    return os.path.join(out, "checkpoints", ckpts[-1])


def llama():
    return os.path.join(ARGS.work, "stage0", "llama")


def eval_split(name, ckpt, builder, annotation, storage_key, storage, prompt="<query>", model_cfg="train_configs/tiny_pretrain.yaml"):
    """Greedy predictions of `ckpt` on one caption split -> {id: prediction}."""
    name = f"{name}-seed{ARGS.seed}"
    out = os.path.join(ARGS.work, name)
    shutil.rmtree(out, ignore_errors=True)
    cfg = {
        "model": {"arch": "chatbridge", "model_type": "pretrain_vicuna"},
        "datasets": {builder: {"build_info": {"annotations": {"train": None, "val": {"storage": annotation}, "test": None},
                                              storage_key: {"storage": storage}}}},
        "run": {"task": "caption_eval", "prompt": prompt, "num_beams": 1, "max_len": 48, "min_len": 1,
                "valid_splits": [], "test_splits": ["val"], "batch_size_eval": 4, "evaluate": True,
                "seed": ARGS.seed, "output_dir": out, "device": "cpu"},
    }
    if builder == "audio_caption":
        del cfg["datasets"][builder]["build_info"]["annotations"]["train"]
        del cfg["datasets"][builder]["build_info"]["annotations"]["test"]
    path = os.path.join(ARGS.work, name + ".yaml")
    json.dump(cfg, open(path, "w"))  # YAML is a superset of JSON
    run([binary("eval"), "--threads", str(ARGS.threads), "--cfg-path", path, "--model-cfg",
         os.path.join(SOURCE, model_cfg), "--options", f"model.llama_model={llama()}", f"model.ckpt={ckpt}",
         f"run.seed={ARGS.seed}"], os.path.join(ARGS.work, name + ".log"))
    results = json.load(open(os.path.join(out, "result", "val_results.json")))
    return {str(r["image_id"]): r["caption"] for r in results}


def normalise(text):
    return " ".join(text.lower().replace(".", " ").split())


def score(predictions, references, label):
    """Items whose prediction equals their reference caption (after lower-casing and whitespace)."""
    right = 0
    for key, pred in sorted(predictions.items()):
        ok = normalise(pred) == normalise(references[key])
        right += ok
        print(f"  {label} {key:<16} {'ok ' if ok else 'BAD'} {pred!r}")
    print(f"  {label}: {right} of {len(predictions)} captions right")
    return right


def check(condition, message):
    if not condition:
        sys.exit("conditioning: FAILED: " + message)
    print("conditioning: ok: " + message)


# modality -> (the stage-1 group kept, eval builder, eval annotation, storage key, storage under tiny_data,
#              the eval id of a record, its valor id (what training reads), stage-1 steps, items right at least)
MODALITIES = {
    "images": (("ti", "image"), "coco_caption", IMAGES, "images", "", lambda r: r["image_id"], lambda r: r["image_id"],
               600, 10),
    "audio": (("ta", "audio"), "audio_caption", AUDIOS, "audios", "audios", lambda r: r["audio"],
              lambda r: os.path.splitext(r["audio"])[0], 1200, 10),
    "videos": (("ti", "video"), "msrvtt_caption", VIDEOS, "videos", "videos", lambda r: r["image_id"],
               lambda r: r["image_id"], 600, 4),
}


def follows_media(label):
    """Stage 1 on one modality's items: each item's greedy caption is its own; the same items listed in
    reverse order keep their captions; a run trained on deranged pairs writes the deranged captions.
    Returns the true run's checkpoint."""
    keep, builder, annotation, storage_key, storage, eval_id, valor_id, steps, minimum = MODALITIES[label]
    storage = os.path.join(tiny_data(), storage)
    recs = json.load(open(os.path.join(tiny_data(), "annotations", annotation)))
    refs = {eval_id(r): r["caption"][0] for r in recs}
    ckpt = train_stage1(label, keep, ARGS.steps or steps)
    first = eval_split(label + "_eval", ckpt, builder, os.path.join(tiny_data(), "annotations", annotation),
                       storage_key, storage)
    right = score(first, refs, label)
    check(right >= minimum, f"stage 1 on {label} captions {right} of {len(recs)} items with their own caption (>= {minimum})")

    # The same items in reverse order: the caption follows the item, not its position.
    reversed_file = os.path.join(ARGS.work, f"{label}_reversed-seed{ARGS.seed}.json")
    json.dump(recs[::-1], open(reversed_file, "w"))
    again = eval_split(label + "_eval_reversed", ckpt, builder, reversed_file, storage_key, storage)
    same = sum(normalise(again[k]) == normalise(first[k]) for k in first)
    check(same == len(first), f"{label} listed in reverse order: {same} of {len(first)} get the caption they got before")

    # Deranged pairs: every item trained with the next item's caption.
    deranged = {eval_id(r): recs[(i + 1) % len(recs)]["caption"][0] for i, r in enumerate(recs)}
    deranged_file = os.path.join(ARGS.work, f"{label}_deranged-seed{ARGS.seed}.json")
    json.dump([{"video_id": valor_id(r), "caption": deranged[eval_id(r)]} for r in recs], open(deranged_file, "w"))
    other = train_stage1(label + "_deranged", keep, ARGS.steps or steps, annotation=deranged_file)
    preds = eval_split(label + "_deranged_eval", other, builder, os.path.join(tiny_data(), "annotations", annotation),
                       storage_key, storage)
    wrong = score(preds, refs, "deranged run vs true captions")
    learned = score(preds, deranged, "deranged run vs its training captions")
    most_wrong = max(1, len(recs) // 6)
    check(wrong <= most_wrong and learned >= minimum,
          f"{label} trained on deranged pairs: {wrong} true captions (<= {most_wrong}), {learned} of its own training "
          f"captions (>= {minimum})")
    return ckpt


def images():
    ckpt = follows_media("images")
    # Chat and eval agree: the stage-2 template through chatbridge-chat and chatbridge-eval.
    question = "Describe the image briefly."
    prompt = f"###Human: Given following image: <query>.###Human: {question}###Assistant:"
    through_eval = eval_split("images_eval_chat_prompt", ckpt, "coco_caption",
                              os.path.join(tiny_data(), "annotations", IMAGES), "images", tiny_data(), prompt=prompt,
                              model_cfg="instructiontuning_configs/tiny_instructtuning.yaml")
    agree = 0
    for key in ("chelsea", "rocket", "coins"):
        log = os.path.join(ARGS.work, f"chat_{key}-seed{ARGS.seed}.log")
        run([binary("chat"), "--threads", str(ARGS.threads), "--cfg-path",
             os.path.join(SOURCE, "instructiontuning_configs/tiny_instructtuning.yaml"), "--image",
             os.path.join(tiny_data(), "images", key + ".jpg"), "--ask", question, "--greedy", "--max-new-tokens", "47",
             "--options", f"model.llama_model={llama()}", f"model.ckpt={ckpt}", f"run.seed={ARGS.seed}"], log)
        answer = [l for l in open(log) if l.startswith("Assistant: ")][-1][len("Assistant: "):].strip()
        print(f"  chat {key}: {answer!r} / eval: {through_eval[key]!r}")
        agree += answer == through_eval[key]
    check(agree == 3, f"chatbridge-chat and chatbridge-eval give the same answer for {agree} of 3 images")


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=["stage0", "images", "audio", "videos"])
    p.add_argument("--bin", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--steps", type=int, default=0, help="stage-1 steps (0: 600 for images and videos, 1200 for audio)")
    p.add_argument("--threads", type=int, default=1)
    ARGS = p.parse_args()
    ARGS.work, ARGS.bin = os.path.abspath(ARGS.work), os.path.abspath(ARGS.bin)
    {"stage0": stage0, "images": images, "audio": lambda: follows_media("audio"),
     "videos": lambda: follows_media("videos")}[ARGS.phase]()


if __name__ == "__main__":
    main()
