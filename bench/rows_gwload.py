"""
bench/rows_gwload.py: the gateway under many concurrent clients (gwload).

  gwload   fp-load -> flowpost-gateway -> fp-sink: 1,000 clients at once,
           each its own client id, key and source address (127.1.x.y), on
           its own keep-alive connection, posting sealed batches in
           sequence; every answer checked (200 and the batch's valid
           acknowledgement).  Targets: no failed request, gateway peak RSS
           (VmHWM) under 64 MiB.  The sink must get every datagram the
           gateway acknowledged as forwarded, unaltered (set digest).

bench/run imports this module and hands itself over with use(); the row
reuses its Proc, Sink, write_conf and helpers.  Everything runs on
127.0.0.1 and 127.1.0.0/16, every process is stopped by its PID, every
wait is bounded.  Python 3 standard library only.
"""

import json
import os
import socket
import subprocess

R = None

TARGET_HWM_MIB = 64
# What the row sets so that 1,000 clients posting back to back are not
# answered 429: rate_limit_global (default 500 batch POSTs/s from all
# clients together).  --gateway-opt overrides it.
GATEWAY_KEYS = {"rate_limit_global": "0"}


def use(module):
    """bench/run hands itself over: its Proc, Sink, write_conf..."""
    global R
    R = module


def add_args(p):
    p.add_argument("--gwload-clients", type=int, default=1000,
                   help="gwload: concurrent clients (default 1000)")
    p.add_argument("--gwload-batches", type=int, default=3,
                   help="gwload: batches each client posts (default 3)")
    p.add_argument("--gwload-datagrams", type=int, default=4,
                   help="gwload: v5 datagrams per batch (default 4)")


def ms(r, hist, key):
    """A latency figure of fp-load's JSON (None when nothing was timed)."""
    h = r.get(hist)
    return h[key] if h else None


def load_binary(bins):
    """fp-load, next to fp-gen in the build."""
    path = os.path.join(os.path.dirname(bins["gen"]), "fp-load")
    if not os.access(path, os.X_OK):
        raise R.BenchError("missing fp-load binary %s" % path)
    return path


def one_run(bench, i):
    """One gateway, one sink, one fp-load run; the numbers of the run."""
    a = bench.args
    load = load_binary(bench.bins)
    n, k, d = a.gwload_clients, a.gwload_batches, a.gwload_datagrams
    wd = os.path.join(bench.workdir, "gwload%d" % i)
    os.makedirs(wd)
    keys = os.path.join(wd, "gateway.keys")
    r = subprocess.run([load, "--write-keys", keys, "--clients", str(n)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if r.returncode != 0:
        raise R.BenchError("fp-load --write-keys: %s"
                           % r.stderr.decode()[-300:])
    sink_port = R.free_port()
    gw_port = R.free_port(socket.SOCK_STREAM)
    conf = dict(GATEWAY_KEYS)
    conf.update(a.gateway_opt)
    gateway = {
        "listen": "127.0.0.1:%d" % gw_port,
        "path_prefix": "",
        "collector": "127.0.0.1:%d" % sink_port,
        "state_dir": os.path.join(wd, "gwstate"),
        "keys_file": keys,
        "metrics_listen": "none",
        "stats_interval": "0",
        "log_level": "warn",
    }
    gateway.update(conf)
    path = R.write_conf(wd, "gateway.conf", "gateway", gateway)
    load_timeout = 300
    sink = R.Sink(bench.bins, sink_port, bench.workdir, idle=10,
                  wait_first=60, timeout=load_timeout + 60,
                  expect=n * k * d, linger=1)
    gw = R.Proc("gateway-gwload%d" % i, [bench.bins["gateway"], "-c", path],
                bench.workdir)
    try:
        if not R.wait_for(lambda: not gw.alive() or
                          R.tcp_accepts(gw_port), 15) or not gw.alive():
            raise R.BenchError("flowpost-gateway did not start; see %s"
                               % gw.logpath)
        cpu0 = gw.cpu_s() or 0
        errpath = os.path.join(wd, "fp-load.err")
        with open(errpath, "wb") as err:
            r = subprocess.run(
                [load, "--gateway", "127.0.0.1:%d" % gw_port, "--keys", keys,
                 "--clients", str(n), "--batches", str(k),
                 "--datagrams", str(d), "--timeout", str(load_timeout)],
                stdout=subprocess.PIPE, stderr=err,
                timeout=load_timeout + 60)
        if r.returncode not in (0, 1):
            raise R.BenchError("fp-load failed (exit %d); see %s"
                               % (r.returncode, errpath))
        res = R.last_json(r.stdout.decode())
        res["gateway_hwm"] = gw.hwm_kib()
        res["gateway_cpu"] = (gw.cpu_s() or 0) - cpu0
        res["rate_keys"] = {key: gateway[key] for key in GATEWAY_KEYS}
        if res["failed"] or res["not_made"]:
            with open(errpath, errors="replace") as f:
                R.log("bench: gwload: %s" % f.read(600).strip())
    finally:
        gw.stop()
        s = sink.result()
    res["sink_datagrams"] = s["datagrams"]
    res["sink_set_hash"] = s["set_hash"]
    # Every datagram acknowledged as forwarded must be at the sink, and
    # with the counts equal, the same ones (order-free digest).  A batch
    # whose answer was lost (a failed request) may have been forwarded
    # too: more at the sink is not a delivery error.
    if s["datagrams"] < res["datagrams"] or (
            s["datagrams"] == res["datagrams"] and
            s["set_hash"] != res["set_hash"]):
        bench.failures.append(
            "gwload: the sink got %d datagrams, %d acknowledged as "
            "forwarded (set digest %s)"
            % (s["datagrams"], res["datagrams"],
               "equal" if s["set_hash"] == res["set_hash"] else "differs"))
    R.log("bench: gwload: %d clients, %d ok, %d failed, %d not made; "
          "%.0f records/s; gateway VmHWM %.1f MiB; p50/p99 %s/%s ms; "
          "sink %d of %d"
          % (res["clients"], res["ok"], res["failed"], res["not_made"],
             res["records_per_s"], (res["gateway_hwm"] or 0) / 1024,
             R.fmt(ms(res, "latency_ms", "p50"), "%.0f"),
             R.fmt(ms(res, "latency_ms", "p99"), "%.0f"),
             s["datagrams"], res["datagrams"]))
    return res


def run(bench):
    """--runs runs of the row (1,000 clients each)."""
    return [one_run(bench, i) for i in range(bench.args.runs)]


def worst(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def rows(bench, runs):
    """The table rows: medians over the runs, the worst for the targets."""
    if not runs:
        return []
    a = bench.args
    med = R.median
    n = len(runs)
    failed = sum(r["failed"] for r in runs)
    not_made = sum(r["not_made"] for r in runs)
    ok = sum(r["ok"] for r in runs)
    hwm = max(r["gateway_hwm"] or 0 for r in runs) / 1024
    statuses = {}
    for r in runs:
        for code, c in r["statuses"].items():
            statuses[code] = statuses.get(code, 0) + c
    recs = sum(r["records"] for r in runs)
    cpu = sum(r["gateway_cpu"] for r in runs)
    keys = ", ".join("%s=%s" % kv for kv in runs[0]["rate_keys"].items())
    sink = sum(r["sink_datagrams"] for r in runs)
    acked = sum(r["datagrams"] for r in runs)
    over = "%d runs" % n if n > 1 else "1 run"
    return [
        ("gwload: clients", "%d" % a.gwload_clients,
         "peak open %d, open at the end %d (lowest of %s); each its own "
         "id, key, 127.1.x.y address and keep-alive connection"
         % (min(r["peak_open"] for r in runs),
            min(r["open_at_end"] for r in runs), over)),
        ("gwload: requests ok / failed", "%d / %d" % (ok, failed),
         "%s; %d batches of %d v5 datagrams per client; statuses %s; "
         "%snot made %d (a client stops at its first failure); "
         "target no failed request: %s"
         % (over, a.gwload_batches, a.gwload_datagrams,
            json.dumps(statuses, sort_keys=True).replace('"', ""),
            "".join("%s %d, " % (key[7:], sum(r[key] for r in runs))
                    for key in sorted(runs[0]) if key.startswith("failed_")
                    and sum(r[key] for r in runs)),
            not_made,
            "met" if failed == 0 and not_made == 0 else "NOT MET")),
        ("gwload: records/s forwarded",
         R.fmt_rate(med([r["records_per_s"] for r in runs])),
         "median; %.0f POSTs/s; gateway %s, the rest default; "
         "%.2f gateway CPU s per M records"
         % (med([r["posts_per_s"] for r in runs]), keys,
            cpu / recs * 1e6 if recs else float("nan"))),
        ("gwload: gateway peak RSS (VmHWM) MiB", "%.1f" % hwm,
         "worst run; target < %d MiB: %s"
         % (TARGET_HWM_MIB, "met" if hwm < TARGET_HWM_MIB else "NOT MET")),
        ("gwload: latency p50 / p99 ms",
         "%s / %s" % (R.fmt(med([ms(r, "latency_ms", "p50") for r in runs]),
                            "%.0f"),
                      R.fmt(med([ms(r, "latency_ms", "p99") for r in runs]),
                            "%.0f")),
         "median; POST sent to acknowledgement read; max %s ms; "
         "connect p99 %s ms"
         % (R.fmt(worst([ms(r, "latency_ms", "max") for r in runs]), "%.0f"),
            R.fmt(worst([ms(r, "connect_ms", "p99") for r in runs]),
                  "%.0f"))),
        ("gwload: datagrams at the sink", "%d" % sink,
         "of %d acknowledged as forwarded; set digest %s"
         % (acked, "equal" if all(r["sink_set_hash"] == r["set_hash"]
                                  for r in runs) else "differs")),
    ]
