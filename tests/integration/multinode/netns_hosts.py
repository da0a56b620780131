"""Hosts on one machine for the multi-node tests: Linux network namespaces joined by veth pairs to a
bridge, each with its own address, host name and /etc/hosts (ip netns exec mounts
/etc/netns/<namespace>/hosts over /etc/hosts). Nothing is added to the machine's own namespace: the
bridge lives in a namespace of its own ("switch").

    with Hosts("host_lost", 2) as h:       # 10.200.0.1 (cbhost0), 10.200.0.2 (cbhost1)
        p = h.start(1, argv, log)           # a process on host 1
        h.cut(1); h.restore(1)              # host 1's link down and up again
        h.slow(1)                           # 5 ms, 50 Mbit/s on both directions of host 1's link
        h.kill(1)                           # kill -9 of every process in host 1's namespace

Everything is removed on exit from the block, also when the test fails; namespaces a killed test
left behind under the same name are removed before new ones are made.
"""
import os
import shutil
import signal
import subprocess
import time

SUBNET = "10.200.0"


def run(*cmd, check=True):
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def unavailable():
    """Why network namespaces cannot be made here, or None."""
    for tool in ("ip", "tc", "unshare"):
        if not shutil.which(tool):
            return f"'{tool}' not found (scripts/setup installs iproute2 and util-linux)"
    if os.geteuid() != 0:
        return "not root: network namespaces need CAP_SYS_ADMIN"
    probe = f"cbprobe{os.getpid()}"
    r = run("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"'ip netns add' failed: {r.stderr.strip()}"
    run("ip", "netns", "del", probe, check=False)
    return None


class Hosts:
    def __init__(self, name, n, own_name_loopback=False):
        # own_name_loopback: each host's /etc/hosts maps its own name to 127.0.1.1, as Debian and Ubuntu
        # install it, and the other hosts' names to their addresses.
        self.own_name_loopback = own_name_loopback
        self.stale = f"cb{name}-"
        self.prefix = f"{self.stale}{os.getpid()}-"
        self.n = n
        self.switch = self.prefix + "sw"
        self.hosts = [self.prefix + f"h{k}" for k in range(n)]

    def addr(self, k):
        return f"{SUBNET}.{k + 1}"

    def hostname(self, k):
        return f"cbhost{k}"

    def __enter__(self):
        self._remove_stale()
        try:
            self._make()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _make(self):
        run("ip", "netns", "add", self.switch)
        run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
        run("ip", "-n", self.switch, "link", "set", "br0", "up")
        def hosts_file(own):
            return "127.0.0.1 localhost\n" + "".join(
                f"{'127.0.1.1' if k == own and self.own_name_loopback else self.addr(k)} {self.hostname(k)}\n"
                for k in range(self.n))
        for k, ns in enumerate(self.hosts):
            run("ip", "netns", "add", ns)
            os.makedirs(f"/etc/netns/{ns}", exist_ok=True)
            with open(f"/etc/netns/{ns}/hosts", "w") as f:
                f.write(hosts_file(k))
            run("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"h{k}", "netns", self.switch)
            run("ip", "-n", self.switch, "link", "set", f"h{k}", "master", "br0")
            run("ip", "-n", self.switch, "link", "set", f"h{k}", "up")
            run("ip", "-n", ns, "addr", "add", f"{self.addr(k)}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        # Every host reaches host 0 before a test starts (bash's /dev/tcp: a refused port still answers).
        for k in range(1, self.n):
            deadline = time.time() + 10
            while True:
                r = subprocess.run(["ip", "netns", "exec", self.hosts[k], "bash", "-c",
                                    f"timeout 1 bash -c '</dev/tcp/{self.addr(0)}/9' 2>&1"],
                                   stdout=subprocess.PIPE, text=True)
                if "refused" in r.stdout or r.returncode == 0:
                    break
                if time.time() > deadline:
                    raise RuntimeError(f"netns_hosts: host {k} cannot reach {self.addr(0)}: {r.stdout.strip()}")
                time.sleep(0.2)

    def start(self, k, argv, log, cwd=None, env=None):
        """Starts argv on host k (own namespace, host name cbhost<k>); output appended to `log`."""
        out = open(log, "a")
        wrapped = ["ip", "netns", "exec", self.hosts[k], "unshare", "--uts", "sh", "-c",
                   f'hostname {self.hostname(k)} && exec "$@"', "sh"] + list(argv)
        return subprocess.Popen(wrapped, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                env={**os.environ, **(env or {})}, start_new_session=True)

    def pids(self, k):
        r = run("ip", "netns", "pids", self.hosts[k], check=False)
        return [int(p) for p in r.stdout.split()]

    def kill(self, k):
        """kill -9 of every process in host k's namespace, until none is left."""
        for _ in range(100):
            pids = self.pids(k)
            if not pids:
                return
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"netns_hosts: processes of host {k} survive kill -9: {self.pids(k)}")

    def cut(self, k):
        run("ip", "-n", self.switch, "link", "set", f"h{k}", "down")

    def restore(self, k):
        run("ip", "-n", self.switch, "link", "set", f"h{k}", "up")

    def slow(self, k, delay="5ms", rate="50mbit"):
        """Latency and a rate limit on both directions of host k's link; returns what was applied. Where
        the kernel has no netem (sch_netem), only the rate limit, by tbf."""
        qdiscs = [("netem", "delay", delay, "rate", rate), ("tbf", "rate", rate, "burst", "32kbit", "latency", "400ms")]
        for qdisc in qdiscs:
            r = run("tc", "-n", self.hosts[k], "qdisc", "add", "dev", "eth0", "root", *qdisc, check=False)
            if r.returncode == 0:
                run("tc", "-n", self.switch, "qdisc", "add", "dev", f"h{k}", "root", *qdisc)
                return " ".join(qdisc) + ("" if qdisc[0] == "netem" else " (no netem in this kernel: no delay)")
        raise RuntimeError(f"netns_hosts: tc cannot shape host {k}'s link: {r.stderr.strip()}")

    def bytes_sent(self, k):
        r = run("ip", "netns", "exec", self.hosts[k], "cat", "/sys/class/net/eth0/statistics/tx_bytes")
        return int(r.stdout)

    def close(self):
        for k in range(len(self.hosts)):
            try:
                self.kill(k)
            except Exception:
                pass
        for ns in self.hosts + [self.switch]:
            run("ip", "netns", "del", ns, check=False)
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)

    def _remove_stale(self):
        """Namespaces of an earlier run of this test that was killed before it could clean up."""
        r = run("ip", "netns", "list", check=False)
        for line in r.stdout.splitlines():
            ns = line.split()[0] if line.split() else ""
            if ns.startswith(self.stale) and not ns.startswith(self.prefix):
                for p in run("ip", "netns", "pids", ns, check=False).stdout.split():
                    try:
                        os.kill(int(p), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                run("ip", "netns", "del", ns, check=False)
                shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
