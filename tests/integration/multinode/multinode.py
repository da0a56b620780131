#!/usr/bin/env python3
"""Multi-node training across hosts made of network namespaces (netns_hosts.py), with faults. Every
scenario trains the tiny stage-1 model for STEPS iterations and compares the per-step losses of
metrics.jsonl (every logged one, replayed steps included) with a one-host run of the same world size
(exact-resume bound 1e-6). Scenarios (ctest label `multinode`, one at a time):

  setup            tiny data, a short stage 0 (the frozen LLaMA), the one-host references (1, 2, 4 ranks)
  hosts_2x1        2 hosts x 1 rank through chatbridge-launch: same losses; traffic crossed eth0
  hosts_2x2        2 hosts x 2 ranks: same losses as 4 ranks on one host
  debian_hosts     2 hosts x 1 rank whose /etc/hosts map their own names to 127.0.1.1 (Debian's and
                   Ubuntu's default): Gloo binds to the address toward the store instead: same losses
  torchrun         2 hosts x 1 rank launched by PyTorch's torchrun (c10d rendezvous, --no-python)
  host_lost        host 1 killed (kill -9 of its namespace) mid-epoch: rank 0 fails within the timeout
                   naming rank 1 and its host; host 1's launcher started again, the group restarts and
                   resumes from the latest checkpoint: same losses
  link_cut_short   host 1's link down for less than the timeout: no failure, no restart, same losses
  link_cut_long    down for longer: both sides fail within the timeout, restart once the link is
                   back, resume: same losses, no hang
  slow_link        netem delay + rate limit on host 1 (tbf's rate limit alone where the kernel has no
                   netem): same losses (the run's time printed)
  save_killed      host 0 killed while rank 0 writes a checkpoint: the job is started again with
                   --resume auto, resumes from the previous complete checkpoint: same losses
  enospc           the checkpoint directory (a small tmpfs) fills up: a clear error naming the file,
                   earlier checkpoints intact, no .tmp- left; after a remount with room --resume auto
                   continues: same losses
  preemption       SIGTERM to every launcher: a checkpoint at the stop step, exit 143; --resume auto
                   continues exactly (no step run twice): same losses
  watchdog         one of 4 ranks stopped (SIGSTOP): every waiting rank reports its rank, the
                   collective and the step, naming the silent rank, and the job ends
  same_node_rank   hosts 1 and 2 both started with --node-rank 1 (3 nodes expected): every launcher
                   stops within seconds naming the rank and both hosts (no fixture needed)
  join_timeout     node 1's launcher never started, --rdzv-conf join_timeout=3: node 0 stops after
                   about 3 s naming node 1 (no fixture needed)

  multinode.py --bin BUILD/bin --work DIR SCENARIO      (exit 77: skipped, with one line saying why)
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns_hosts  # noqa: E402

SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SKIP = 77
STEPS = 40
SAVE_EVERY = 4
BOUND = 1e-6
PORT = 29500


def say(msg):
    print(f"[multinode] {ARGS.scenario}: {msg}", flush=True)


def fail(msg):
    say("FAILED: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def binary(name):
    return os.path.join(ARGS.bin, "chatbridge-" + name)


def fixture_dir():
    return os.path.join(ARGS.work, "fixture")


def llama_dir():
    return os.path.join(fixture_dir(), "stage0", "llama")


def scenario_dir():
    """A fresh working directory with what the tiny configs name by relative paths."""
    d = os.path.join(ARGS.work, ARGS.scenario)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name in ("train_configs", "instructiontuning_configs", "tests"):
        os.symlink(os.path.join(SOURCE, name), os.path.join(d, name))
    os.symlink(os.path.join(fixture_dir(), "tiny_data"), os.path.join(d, "tiny_data"))
    return d


def data_opts(world):
    """The tiny stage-1 data options; for 4 ranks with every global batch doubled (2 does not split in 4)."""
    if world < 4:
        return "train_configs/tiny_pretrain_data.json"
    path = os.path.join(fixture_dir(), "tiny_pretrain_data_x2.json")
    if not os.path.exists(path):
        with open(os.path.join(SOURCE, "train_configs/tiny_pretrain_data.json")) as f:
            opts = json.load(f)
        for loader in opts["data_cfg"]["train"]:
            loader["batch_size"] *= 2
        with open(path, "w") as f:
            json.dump(opts, f, indent=1)
    return path


def train_cmd(out, timeout_s, world=2):
    # --resume auto, as a scheduler's job script has it: a fresh start when there is no checkpoint.
    return [binary("train"), "--threads", "1", "--cfg-path", "train_configs/tiny_pretrain.yaml", "--resume", "auto",
            "--options", f"run.output_dir={out}", f"model.llama_model={llama_dir()}", "run.max_epoch=1",
            f"run.iters_per_epoch={STEPS}", "run.warmup_steps=2", "run.log_freq=1",
            f"run.save_every_iters={SAVE_EVERY}", "run.keep_last_checkpoints=0", f"run.dist_timeout={timeout_s}",
            f"run.valor_data_opts_path={data_opts(world)}"]


def launch_cmd(nnodes, node_rank, nproc, master, port, max_restarts=0):
    return [binary("launch"), "--nnodes", str(nnodes), "--node-rank", str(node_rank), "--nproc-per-node", str(nproc),
            "--master-addr", master, "--master-port", str(port), "--max-restarts", str(max_restarts),
            "--monitor-interval", "0.05"]


def logged(out):
    """step -> every loss metrics.jsonl holds for it (a restarted run logs the replayed steps again)."""
    steps = {}
    path = os.path.join(out, "metrics.jsonl")
    if not os.path.exists(path):
        return steps
    with open(path) as f:
        for line in f:
            try:
                j = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            if isinstance(j.get("loss"), (int, float)) and "step" in j:
                steps.setdefault(j["step"], []).append(j["loss"])
    return steps


def last_step(out):
    s = logged(out)
    return max(s) if s else -1


def compare(world, out):
    """(max error, replayed steps) of `out`'s losses against the one-host run of `world` ranks."""
    ref, got = logged(os.path.join(fixture_dir(), f"ref{world}")), logged(out)
    check(sorted(ref) == list(range(STEPS)), f"reference ref{world} is incomplete")
    check(sorted(got) == list(range(STEPS)), f"steps logged: {sorted(got)}, expected 0..{STEPS - 1}")
    err = max(abs(l - ref[s][0]) for s, ls in got.items() for l in ls)
    replayed = sum(len(ls) - 1 for ls in got.values())
    say(f"per-step losses vs one host x {world}: max_err={err:.3g} bound={BOUND} ({replayed} steps replayed)")
    check(err <= BOUND, f"losses differ from the one-host run by {err}")
    return err, replayed


def wait_step(out, step, procs, limit=120):
    t0 = time.time()
    while last_step(out) < step:
        for p in procs:
            check(p.poll() is None, f"a launcher exited ({p.returncode}) before step {step}")
        check(time.time() - t0 < limit, f"step {step} not reached in {limit} s")
        time.sleep(0.005)


def wait_exit(procs, limit, what):
    t0 = time.time()
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(1, limit - (time.time() - t0))))
        except subprocess.TimeoutExpired:
            fail(f"{what}: still running after {limit} s (a hang)")
    return codes


def wait_log(path, pattern, limit, what):
    """The first match of `pattern` in the file, waiting up to `limit` s; (match, seconds waited)."""
    t0 = time.time()
    rx = re.compile(pattern)
    while True:
        if os.path.exists(path):
            m = rx.search(open(path, errors="replace").read())
            if m:
                return m, time.time() - t0
        check(time.time() - t0 < limit, f"{what}: '{pattern}' not in {path} after {limit} s")
        time.sleep(0.02)


def interval(timeout_s):
    """The watchdog's heartbeat period (framework/distributed/watchdog.h)."""
    return min(max(timeout_s / 20, 0.1), 5)


def notice_bound(timeout_s):
    # The timeout, the watchdog's settling time (3 heartbeats) and slack for a loaded 2-core machine.
    return timeout_s + 3 * interval(timeout_s) + 10


def need_netns():
    why = netns_hosts.unavailable()
    if why:
        print(f"[multinode] {ARGS.scenario}: skipped: {why}", flush=True)
        sys.exit(SKIP)


def start_nodes(h, d, nproc, timeout_s, port=PORT, max_restarts=0, logs=("node0", "node1")):
    out = os.path.join(d, "out")
    return out, [h.start(k, launch_cmd(2, k, nproc, h.addr(0), port, max_restarts) + train_cmd(out, timeout_s, 2 * nproc),
                         os.path.join(d, logs[k] + ".log"), cwd=d) for k in range(2)]


# --- scenarios ---------------------------------------------------------------------------------------

def setup():
    d = fixture_dir()
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    subprocess.run([sys.executable, os.path.join(SOURCE, "scripts/make-tiny-data"), os.path.join(d, "tiny_data")],
                   check=True, stdout=subprocess.DEVNULL)
    for name in ("train_configs", "instructiontuning_configs", "tests"):
        os.symlink(os.path.join(SOURCE, name), os.path.join(d, name))

    def run(cmd, log):
        with open(os.path.join(d, log), "w") as f:
            r = subprocess.run(cmd, cwd=d, stdout=f, stderr=subprocess.STDOUT)
        check(r.returncode == 0, f"{cmd[0]} failed, see {os.path.join(d, log)}")

    run([binary("train"), "--threads", "1", "--cfg-path", "train_configs/tiny_lm_pretrain.yaml", "--options",
         f"run.output_dir={os.path.join(d, 'stage0')}", "run.max_epoch=1", "run.iters_per_epoch=3",
         "run.warmup_steps=1"], "stage0.log")
    run(train_cmd(os.path.join(d, "ref1"), 60, world=1), "ref1.log")
    for world in (2, 4):
        run([binary("launch"), "--standalone", "--nproc-per-node", str(world)] +
            train_cmd(os.path.join(d, f"ref{world}"), 60, world), f"ref{world}.log")
    for world in (1, 2, 4):
        check(sorted(logged(os.path.join(d, f"ref{world}"))) == list(range(STEPS)), f"ref{world} incomplete")
    say("tiny data, stage 0 and the one-host references (1, 2, 4 ranks) ready")


def hosts(nproc):
    need_netns()
    d = scenario_dir()
    with netns_hosts.Hosts(ARGS.scenario, 2) as h:
        t0 = time.time()
        out, procs = start_nodes(h, d, nproc, 60)
        check(wait_exit(procs, 180, "2 hosts") == [0, 0], "a launcher failed, see node*.log")
        sent = h.bytes_sent(1)
        say(f"2 hosts x {nproc} ranks: {time.time() - t0:.1f} s; host 1 sent {sent / 1e6:.1f} MB over eth0")
        check(sent > 1e6, "no training traffic crossed host 1's interface")
        compare(2 * nproc, out)


def debian_hosts():
    # Gloo took the host name's address, 127.0.1.1, and rank 0 failed at once with
    # "connect [127.0.1.1]:N: Connection refused" (its peer's loopback).
    need_netns()
    d = scenario_dir()
    with netns_hosts.Hosts(ARGS.scenario, 2, own_name_loopback=True) as h:
        out, procs = start_nodes(h, d, 1, 60)
        check(wait_exit(procs, 180, "2 hosts") == [0, 0], "a launcher failed, see node*.log")
        wait_log(os.path.join(d, "node0.log"), re.escape(f"Gloo uses {h.addr(0)}, the address toward the store"), 1,
                 "rank 0")  # rank 1 logs warnings only
        compare(2, out)


def torchrun():
    need_netns()
    python = shutil.which("python3", path="/usr/bin:/bin")
    if not python or subprocess.run([python, "-c", "import torch.distributed.run"],
                                    stderr=subprocess.DEVNULL).returncode != 0:
        print(f"[multinode] torchrun: skipped: no torch for {python or 'python3'} (scripts/setup installs "
              "python3-torch)", flush=True)
        sys.exit(SKIP)
    d = scenario_dir()
    out = os.path.join(d, "out")
    with netns_hosts.Hosts(ARGS.scenario, 2) as h:
        # torchrun 1.13 spells its options with underscores (2.x takes both). Under Python 3.11 it cannot
        # parse its own default "0" for --redirects/--tee (IntFlag no longer lists the zero member): "1"
        # (stdout through a file, teed) can be parsed.
        procs = [h.start(k, [python, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                             "--rdzv_backend", "c10d", "--rdzv_endpoint", f"{h.addr(0)}:29400", "--rdzv_id", "cbtest",
                             "--max_restarts", "0", "--redirects", "1", "--tee", "1", "--no_python"] +
                         train_cmd(out, 60),
                         os.path.join(d, f"node{k}.log"), cwd=d) for k in range(2)]
        check(wait_exit(procs, 240, "torchrun") == [0, 0], "torchrun failed, see node*.log")
        check(h.bytes_sent(1) > 1e6, "no training traffic crossed host 1's interface")
        compare(2, out)


def host_lost():
    need_netns()
    d, timeout_s = scenario_dir(), 8
    with netns_hosts.Hosts(ARGS.scenario, 2) as h:
        out, procs = start_nodes(h, d, 1, timeout_s, max_restarts=1)
        wait_step(out, 12, procs)
        killed_at = last_step(out)
        h.kill(1)
        m, noticed = wait_log(os.path.join(d, "node0.log"), r"error: distributed: rank 0/2: .*", notice_bound(timeout_s),
                              "rank 0 noticing the lost host")
        say(f"host 1 killed after step {killed_at}; rank 0 failed after {noticed:.1f} s "
            f"(bound {notice_bound(timeout_s):.1f} s): {m.group(0)[:300]}")
        check("rank 1 (host cbhost1" in m.group(0), "the error does not name rank 1 and its host")
        procs[1] = h.start(1, launch_cmd(2, 1, 1, h.addr(0), PORT, 1) + train_cmd(out, timeout_s),
                           os.path.join(d, "node1-back.log"), cwd=d)
        check(wait_exit(procs, 180, "restarted group") == [0, 0], "the restarted group failed, see node*.log")
        wait_log(os.path.join(d, "node0.log"), r"resumed from \S+", 1, "resume")
        _, replayed = compare(2, out)
        check(replayed > 0, "nothing replayed: the group did not resume from a checkpoint before the kill")


def link_cut_short():
    need_netns()
    d, timeout_s, cut_s = scenario_dir(), 12, 3
    with netns_hosts.Hosts(ARGS.scenario, 2) as h:
        out, procs = start_nodes(h, d, 1, timeout_s)
        wait_step(out, 10, procs)
        h.cut(1)
        at_cut = last_step(out)
        time.sleep(cut_s)
        at_restore = last_step(out)
        h.restore(1)
        say(f"link cut for {cut_s} s (timeout {timeout_s} s) after step {at_cut}; step {at_restore} when restored")
        check(at_restore < STEPS - 1, "the run ended before the link came back")
        check(at_restore <= at_cut + 2, "training went on while the link was cut: the cut did not bite")
        check(wait_exit(procs, 120, "after the cut") == [0, 0], "a launcher failed, see node*.log")
        for k in range(2):
            check("restarting" not in open(os.path.join(d, f"node{k}.log")).read(), f"node {k} restarted")
        _, replayed = compare(2, out)
        check(replayed == 0, "steps were replayed: the job restarted")


def link_cut_long():
    need_netns()
    d, timeout_s = scenario_dir(), 5
    with netns_hosts.Hosts(ARGS.scenario, 2) as h:
        out, procs = start_nodes(h, d, 1, timeout_s, max_restarts=1)
        wait_step(out, 10, procs)
        h.cut(1)
        t_cut = time.time()
        m0, s0 = wait_log(os.path.join(d, "node0.log"), r"error: distributed: rank 0/2: .*", notice_bound(timeout_s),
                          "rank 0 failing on the cut link")
        m1, _ = wait_log(os.path.join(d, "node1.log"), r"error: distributed: rank 1/2: .*",
                         notice_bound(timeout_s) - (time.time() - t_cut), "rank 1 failing on the cut link")
        s1 = time.time() - t_cut
        say(f"link cut: rank 0 failed after {s0:.1f} s, rank 1 after {s1:.1f} s (timeout {timeout_s} s, bound "
            f"{notice_bound(timeout_s):.1f} s)\n  rank 0: {m0.group(0)[:300]}\n  rank 1: {m1.group(0)[:300]}")
        check("rank 1 (host cbhost1" in m0.group(0), "rank 0's error does not name rank 1 and its host")
        time.sleep(max(0.0, 2 * timeout_s - (time.time() - t_cut)))
        h.restore(1)
        say(f"link restored after {time.time() - t_cut:.1f} s")
        check(wait_exit(procs, 240, "after the link came back") == [0, 0], "the restarted group failed")
        compare(2, out)
        # The cut may land after a checkpoint is complete (rank 0 saves, then the barrier fails), so
        # nothing needs replaying; what must hold is that the restart resumed instead of starting over.
        with open(os.path.join(d, "node0.log")) as f:
            resumed = re.findall(r"resumed from \S*step_(\d+)", f.read())
        check(resumed, "the restarted group did not resume from a checkpoint")
        say(f"the restarted group resumed from step {int(resumed[-1])}")


def slow_link():
    need_netns()
    d = scenario_dir()
    with netns_hosts.Hosts(ARGS.scenario, 2) as h:
        shaped = h.slow(1, rate="20mbit")
        t0 = time.time()
        out, procs = start_nodes(h, d, 1, 60)
        check(wait_exit(procs, 240, "slow link") == [0, 0], "a launcher failed on the slow link, see node*.log")
        say(f"2 hosts, host 1's link shaped by '{shaped}': {time.time() - t0:.1f} s for {STEPS} steps")
        compare(2, out)


def trainer_pid(h, k):
    """The worker's pid: the program run is chatbridge-train (the launcher's arguments name it too)."""
    for p in h.pids(k):
        try:
            if os.path.basename(open(f"/proc/{p}/cmdline").read().split("\0")[0]) == "chatbridge-train":
                return p
        except OSError:
            pass
    return None


def wait_stopped(pid):
    """Until every thread of pid is in the stopped state ('T' in /proc/pid/task/*/stat)."""
    while True:
        states = []
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                states.append(open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()[0])
            except OSError:
                pass  # a thread that ended meanwhile
        if all(s == "T" for s in states):
            return
        time.sleep(0.0002)


def save_killed():
    need_netns()
    d, timeout_s = scenario_dir(), 8
    with netns_hosts.Hosts(ARGS.scenario, 2) as h:
        out, procs = start_nodes(h, d, 1, timeout_s)
        ckpts = os.path.join(out, "checkpoints")
        wait_step(out, 8, procs)
        rank0 = trainer_pid(h, 0)
        check(rank0, "no trainer on host 0")
        tmp = None
        while tmp is None:
            check(procs[0].poll() is None, "the run ended before a save could be caught")
            names = [n for n in os.listdir(ckpts) if n.startswith(".tmp-step_")] if os.path.isdir(ckpts) else []
            if not names:
                time.sleep(0.0005)
                continue
            os.kill(rank0, signal.SIGSTOP)  # hold the writer, then take its host down
            wait_stopped(rank0)  # kill() only queues the signal: the writer may still rename meanwhile
            if os.path.isdir(os.path.join(ckpts, names[0])):
                tmp = names[0]
                h.kill(0)
            else:
                os.kill(rank0, signal.SIGCONT)  # renamed already: catch the next save
        step = tmp[len(".tmp-"):]
        check(not os.path.exists(os.path.join(ckpts, step)), f"{step} is complete: the kill came too late")
        complete = sorted(n for n in os.listdir(ckpts) if n.startswith("step_"))
        say(f"host 0 killed while rank 0 wrote {step} (left: {tmp}, {len(os.listdir(os.path.join(ckpts, tmp)))} "
            f"entries); complete before it: {complete[-1]}")
        codes = wait_exit([procs[1]], notice_bound(timeout_s) + 30, "node 1 after losing node 0")
        check(codes[0] != 0, "node 1's launcher reported success after losing node 0")
        # The job is submitted again (a scheduler's requeue): same command, fresh launchers.
        out, procs = start_nodes(h, d, 1, timeout_s, port=PORT + 1, logs=("node0-again", "node1-again"))
        check(wait_exit(procs, 180, "the job started again") == [0, 0], "the job started again failed")
        m, _ = wait_log(os.path.join(d, "node0-again.log"), r"resumed from (\S+)", 1, "resume")
        say(f"started again: {m.group(0)}")
        check(m.group(1).endswith(complete[-1]), f"resumed from {m.group(1)}, not the last complete {complete[-1]}")
        check(not [n for n in os.listdir(ckpts) if n.startswith(".tmp-")], "a .tmp- directory is left")
        compare(2, out)


def enospc():
    """Runs itself again in a mount namespace of its own, where the checkpoint tmpfs is mounted."""
    if os.environ.get("CB_MULTINODE_MOUNT_NS") != "1":
        if os.geteuid() != 0 or not shutil.which("unshare"):
            print("[multinode] enospc: skipped: a tmpfs needs root and unshare", flush=True)
            sys.exit(SKIP)
        r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable] + sys.argv,
                           env={**os.environ, "CB_MULTINODE_MOUNT_NS": "1"})
        sys.exit(r.returncode)
    d = scenario_dir()
    out = os.path.join(d, "out")
    ckpts = os.path.join(out, "checkpoints")
    os.makedirs(ckpts)
    # One checkpoint of the tiny model takes 2.1 MB: room for two.
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", ckpts])
    if r.returncode != 0:
        print("[multinode] enospc: skipped: cannot mount a tmpfs here", flush=True)
        sys.exit(SKIP)
    try:
        log = os.path.join(d, "full.log")
        with open(log, "w") as f:
            code = subprocess.run(train_cmd(out, 60, world=1), cwd=d, stdout=f, stderr=subprocess.STDOUT).returncode
        text = open(log).read()
        m = re.search(r"error: (checkpoint .*)", text)
        check(code != 0 and m, f"no checkpoint error with a full disk (exit {code}), see {log}")
        say(f"exit {code}: {m.group(1)[:400]}")
        check("No space left on device" in m.group(1) and re.search(r"checkpoints/\S+\.safetensors|\.json", m.group(1)),
              "the error does not say 'No space left on device' and name the file")
        left = os.listdir(ckpts)
        check(not [n for n in left if n.startswith(".tmp-")], f"temporaries left behind: {left}")
        complete = sorted(n for n in left if os.path.exists(os.path.join(ckpts, n, "COMPLETE")))
        check(complete == sorted(left) and len(complete) >= 1, f"checkpoints after the failure: {left}")
        say(f"left in the full directory: {', '.join(complete)} (all complete)")
        subprocess.run(["mount", "-o", "remount,size=64m", ckpts], check=True)
        with open(os.path.join(d, "room.log"), "w") as f:
            code = subprocess.run(train_cmd(out, 60, world=1), cwd=d, stdout=f, stderr=subprocess.STDOUT).returncode
        check(code == 0, f"--resume auto with room failed (exit {code}), see room.log")
        m, _ = wait_log(os.path.join(d, "room.log"), r"resumed from (\S+)", 1, "resume")
        check(m.group(1).endswith(complete[-1]), f"resumed from {m.group(1)}, not {complete[-1]}")
        compare(1, out)
    finally:
        subprocess.run(["umount", ckpts])


def preemption():
    need_netns()
    d, timeout_s = scenario_dir(), 10
    with netns_hosts.Hosts(ARGS.scenario, 2) as h:
        out, procs = start_nodes(h, d, 1, timeout_s)
        wait_step(out, 10, procs)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = wait_exit(procs, 60, "after SIGTERM")
        m, _ = wait_log(os.path.join(d, "node0.log"), r"SIGTERM: checkpoint saved at step (\d+)", 1, "the stop save")
        stop = int(m.group(1))
        say(f"SIGTERM to both launchers: exit codes {codes}; {m.group(0)}")
        check(codes == [143, 143], "launchers did not exit with 143 (128 + SIGTERM)")
        check(stop < STEPS, "the run had ended before the signal")
        check(os.path.exists(os.path.join(out, "checkpoints", f"step_{stop:09d}", "COMPLETE")), "no checkpoint at the stop")
        out, procs = start_nodes(h, d, 1, timeout_s, port=PORT + 1, logs=("node0-again", "node1-again"))
        check(wait_exit(procs, 180, "resumed job") == [0, 0], "the resumed job failed")
        _, replayed = compare(2, out)
        check(replayed == 0, "steps ran twice: the resume did not continue exactly at the stop")


def worker_pid(launcher_pid, rank):
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = open(f"/proc/{p}/stat").read()
            ppid = int(stat[stat.rfind(")") + 2:].split()[1])
            if ppid == launcher_pid and f"\0RANK={rank}\0" in "\0" + open(f"/proc/{p}/environ").read():
                return int(p)
        except (OSError, ValueError, IndexError):
            pass
    return None


def watchdog():
    d, timeout_s = scenario_dir(), 4
    out = os.path.join(d, "out")
    log = os.path.join(d, "launch.log")
    with open(log, "w") as f:
        p = subprocess.Popen([binary("launch"), "--standalone", "--nproc-per-node", "4", "--monitor-interval", "0.05"] +
                             train_cmd(out, timeout_s, 4), cwd=d, stdout=f, stderr=subprocess.STDOUT)
    try:
        wait_step(out, 8, [p])
        victim = worker_pid(p.pid, 3)
        check(victim, "rank 3's worker not found")
        os.kill(victim, signal.SIGSTOP)
        t0 = time.time()
        code = wait_exit([p], notice_bound(timeout_s) + 40, "the job with a stopped rank")[0]
        took = time.time() - t0
    finally:
        if p.poll() is None:
            p.kill()
    text = open(log).read()
    say(f"rank 3 stopped: the job ended after {took:.1f} s with exit {code}")
    check(code != 0, "the job succeeded with a stopped rank")
    for r in (0, 1, 2):
        reports = re.findall(rf"distributed: rank {r}/4: \w+ at step \d+ (?:failed|has not finished)[^\n]*", text)
        check(reports, f"rank {r} did not report the collective it waited on")
        named = [line for line in reports if "rank 3 (host" in line]
        say(f"rank {r}: {(named or reports)[0][:300]}")
        check(named, f"rank {r}'s reports do not name the silent rank 3")


def same_node_rank():
    # Before, host 2's launcher counted as host 1's started again after a loss: every launcher waited
    # 900 s for node 2, which nobody had started.
    need_netns()
    d = scenario_dir()
    with netns_hosts.Hosts(ARGS.scenario, 3) as h:
        procs = [h.start(0, launch_cmd(3, 0, 1, h.addr(0), PORT) + ["sleep", "60"], os.path.join(d, "node0.log"))]
        procs.append(h.start(1, launch_cmd(3, 1, 1, h.addr(0), PORT) + ["sleep", "60"], os.path.join(d, "node1.log")))
        wait_log(os.path.join(d, "node1.log"), "waits for 1 more node", 30, "host 1's launcher")
        t0 = time.time()
        procs.append(h.start(2, launch_cmd(3, 1, 1, h.addr(0), PORT) + ["sleep", "60"], os.path.join(d, "node2.log")))
        codes = wait_exit(procs, 30, "launchers with a rank given twice")
        took = time.time() - t0
        say(f"rank 1 given to hosts 1 and 2: every launcher stopped after {took:.1f} s with {codes}")
        check(codes == [1, 1, 1], f"exit codes {codes}, expected 1 from every launcher")
        for k in range(3):
            m, _ = wait_log(os.path.join(d, f"node{k}.log"),
                            r"--node-rank 1 was given to two launchers: the one on cbhost1 \(pid \d+\) holds it, "
                            r"the one on cbhost2 \(pid \d+\) was started with it too", 1, f"host {k}'s launcher")
            if k == 0:
                say(m.group(0))


def join_timeout():
    need_netns()
    d = scenario_dir()
    with netns_hosts.Hosts(ARGS.scenario, 2) as h:
        log = os.path.join(d, "node0.log")
        t0 = time.time()
        p = h.start(0, launch_cmd(2, 0, 1, h.addr(0), PORT) + ["--rdzv-conf", "join_timeout=3", "sleep", "60"], log)
        code = wait_exit([p], 30, "node 0 without node 1")[0]
        took = time.time() - t0
        say(f"node 1 never started, join_timeout=3: node 0 exited {code} after {took:.1f} s")
        check(code == 1, f"exit code {code}, expected 1")
        check(3 <= took < 15, f"took {took:.1f} s, expected about 3 s")
        wait_log(log, r"only 1 of 2 nodes joined attempt 0 at 10\.200\.0\.1:\d+ within 3 s \(--rdzv-conf "
                 r"join_timeout\); missing: node 1", 1, "node 0's launcher")


SCENARIOS = {"setup": setup, "hosts_2x1": lambda: hosts(1), "hosts_2x2": lambda: hosts(2),
             "debian_hosts": debian_hosts, "torchrun": torchrun,
             "host_lost": host_lost, "link_cut_short": link_cut_short, "link_cut_long": link_cut_long,
             "slow_link": slow_link, "save_killed": save_killed, "enospc": enospc, "preemption": preemption,
             "watchdog": watchdog, "same_node_rank": same_node_rank, "join_timeout": join_timeout}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    ARGS = parser.parse_args()
    ARGS.bin, ARGS.work = os.path.abspath(ARGS.bin), os.path.abspath(ARGS.work)
    os.makedirs(ARGS.work, exist_ok=True)
    SCENARIOS[ARGS.scenario]()
    say("ok")
