#!/usr/bin/env python3
"""chatbridge-train on webdataset tar shards, end to end: the tiny image set's shard (scripts/make-tiny-data)
split into two shards, read by a `data_format: webdataset` stage-1 group with the tiny model and the
conditioning tests' stage-0 LLaMA (fixture cb_cond_lm), through the default shuffle buffer (1000, as the
original's wds.shuffle(1000)). Four steps with a checkpoint at step 2, then a run resumed from step 2:
its steps 3 and 4 must have the uninterrupted run's losses exactly, and the checkpoint must hold the
shard readers' positions and buffers. Then the same four steps on 2 ranks (chatbridge-launch) from two
shards, the second cut inside its last member: both ranks must finish, each reading one shard, and
only rank 1 meeting the cut one.

  train_from_shards.py --bin BUILD/bin --cond BUILD/tests/conditioning --work DIR
"""
import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def split_shard(src, out_dir, cut_last=False):
    """The members of `src` into two shards, samples (members of one key) kept together; with `cut_last`,
    the second shard ends inside the data of an extra last member (a truncated shard)."""
    with tarfile.open(src) as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers() if m.isfile()]
    keys = sorted({m.name.split(".")[0] for m, _ in members})
    os.makedirs(out_dir, exist_ok=True)
    for k in range(2):
        mine = set(keys[k::2])
        with tarfile.open(os.path.join(out_dir, f"{k:05d}.tar"), "w", format=tarfile.USTAR_FORMAT) as t:
            for m, data in members:
                if m.name.split(".")[0] in mine:
                    t.addfile(m, io.BytesIO(data))
            if cut_last and k == 1:
                cut = tarfile.TarInfo("zzzzzz.txt")
                cut.size = 5000
                cut_at = t.offset + tarfile.BLOCKSIZE + 100  # 100 bytes into its data
                t.addfile(cut, io.BytesIO(b"x" * cut.size))
        if cut_last and k == 1:
            os.truncate(os.path.join(out_dir, f"{k:05d}.tar"), cut_at)
    return len(keys)


def write_data_opts(args, name, pattern):
    opts = json.load(open(os.path.join(SOURCE, "train_configs/tiny_pretrain_data.json")))
    opts["data_cfg"]["train"] = [{
        "datasets": [{"name": "tiny-shards", "shards": pattern}],
        "task": "ti", "data_format": "webdataset", "steps": 1, "batch_size": 2, "n_workers": 1}]
    json.dump(opts, open(os.path.join(args.work, name), "w"), indent=1)


def train(args, out, extra, data="data.json", launch=()):
    cmd = list(launch) + [
        os.path.join(args.bin, "chatbridge-train"), "--cfg-path", os.path.join(SOURCE, "train_configs/tiny_pretrain.yaml"),
        "--options", f"model.llama_model={os.path.join(args.cond, 'stage0', 'llama')}",
        f"run.valor_data_opts_path={os.path.join(args.work, data)}", f"run.output_dir={out}",
        "run.iters_per_epoch=4", "run.max_epoch=1", "run.save_every_iters=2", "run.log_freq=1",
        "run.warmup_steps=1"] + extra
    with open(out + ".log", "w") as f:
        r = subprocess.run(cmd, cwd=args.work, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        sys.stdout.write(open(out + ".log").read()[-4000:])
        sys.exit(f"chatbridge-train failed (exit {r.returncode}), log {out}.log")
    return {m["step"]: m["loss"] for m in map(json.loads, open(os.path.join(out, "metrics.jsonl"))) if "loss" in m}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", required=True)
    p.add_argument("--cond", required=True, help="the conditioning tests' work dir (tiny_data, stage0/llama)")
    p.add_argument("--work", required=True)
    args = p.parse_args()
    args.bin, args.cond, args.work = map(os.path.abspath, (args.bin, args.cond, args.work))
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    tiny = os.path.join(args.cond, "tiny_data/webdataset/images-00000.tar")
    n = split_shard(tiny, os.path.join(args.work, "shards"))
    write_data_opts(args, "data.json", os.path.join(args.work, "shards/{00000..00001}.tar"))

    full = train(args, os.path.join(args.work, "full"), [])
    ckpt = os.path.join(args.work, "full/checkpoints/step_000000002")
    state = json.load(open(os.path.join(ckpt, "state.json")))
    cursors = state["ranks"][0]["loader"]["shard_cursors"]
    print(f"{n} samples in 2 shards; losses {full}; shard positions at step 2: {cursors}")
    if sorted(full) != [0, 1, 2, 3]:
        sys.exit(f"expected 4 logged steps, got {sorted(full)}")
    if cursors[0][0]["pass"] * 1000 + cursors[0][0]["shard"] * 100 + cursors[0][0]["sample"] == 0:
        sys.exit("the checkpoint's shard position is still at the start")
    # The buffer's first fill reads 100 samples before the first pick, then one more per pick.
    if cursors[0][0].get("shuffle_buffer") != 1000 or len(cursors[0][0].get("buffer", [])) < 99:
        sys.exit("the checkpoint holds no shuffle buffer of 1000 with its first 100 samples")
    resumed = train(args, os.path.join(args.work, "resumed"), [f"run.resume_ckpt_path={ckpt}"])
    if {s: resumed[s] for s in (2, 3)} != {s: full[s] for s in (2, 3)}:
        sys.exit(f"resumed losses {resumed} differ from the uninterrupted run's {full}")
    print("resumed run: same losses for steps 3 and 4")

    # 2 ranks: rank r reads shard r (r mod 2), so only rank 1 meets the cut shard, at every pass.
    split_shard(tiny, os.path.join(args.work, "shards2"), cut_last=True)
    write_data_opts(args, "data2.json", os.path.join(args.work, "shards2/{00000..00001}.tar"))
    launch = [os.path.join(args.bin, "chatbridge-launch"), "--standalone", "--nproc-per-node", "2"]
    two = train(args, os.path.join(args.work, "two"), ["run.max_bad_sample_fraction=0.9"], "data2.json", launch)
    if sorted(two) != [0, 1, 2, 3]:
        sys.exit(f"2 ranks: expected 4 logged steps, got {sorted(two)}")
    ranks = json.load(open(os.path.join(args.work, "two/checkpoints/step_000000004/state.json")))["ranks"]
    bad = [r["loader"]["skipped"]["ti--tiny-shards/tiny-shards"]["bad"] for r in ranks]
    print(f"2 ranks: losses {two}; bad samples per rank {bad}")
    for rank, r in enumerate(ranks):
        if r["loader"]["rank"] != rank:
            sys.exit(f"2 ranks: state {rank} is rank {r['loader']['rank']}'s")
        reader = r["loader"]["shard_cursors"][0][0]
        # One shard a pass: every buffered sample is shard 0 of its pass (the cursor may stand at 1, the end).
        if any(p[1] != 0 for p in reader["buffer"]) or reader["shard"] > 1:
            sys.exit(f"2 ranks: rank {rank} read from more than one shard: {reader}")
    if bad[0] != 0 or bad[1] < 2:
        sys.exit(f"2 ranks: the cut shard should be met by rank 1 only, every pass; bad samples per rank {bad}")
    print("2 ranks: both finished, each on its own shard")


if __name__ == "__main__":
    main()
