"""Rough static timing estimate of every flip-flop / block-RAM endpoint of a synth_ecp5 netlist.

Where nextpnr reports one critical path per build (10-30 minutes), this lists every endpoint
whose estimated arrival exceeds the period, grouped by source register and endpoint, in
seconds. Delays are calibrated on nextpnr-ecp5 speed-6 reports of this design: FF clk-to-q
0.52 ns, LUT4 0.24 ns, about 1.2 ns of routing per net (2.8 ns into a DSP), CCU2C carry 0.45 in,
0.035 per bit, 0.44 out, DSP 3.93 ns combinational, block-RAM clock-to-out 4.4 ns. A net's
routing grows with its fan-out: 1.2 + 0.07 * sqrt(fan-out - 1) ns (nextpnr, 2026-11-27: nets of
fan-out 2, 8, 50, 957 routed in 1.2, 1.6, 2.5, 5.2 ns; the worst routed path, 16.6 ns, estimates
16.9), except a net on a global buffer (DCCA), 2.0 ns. Without the fan-out term it ranked the same
worst path as nextpnr (28.5 ns estimated, 26.7 ns routed). Aim for <= 9 ns at 100 MHz.
It does not know where cells are placed: a net between blocks that placement puts far apart
(a unit and a memory's capture registers) can route in 4-10 ns where it estimates 1.2-2.2.

With ``--routed REPORT.json`` (nextpnr's ``--report`` written with ``--detailed-timing-report``,
e.g. by ``octet bitstream --timing-detail``, from the same netlist), each endpoint's arrival is
nextpnr's routed one (the report's latest arrival at every flip-flop / block-RAM input), so the
listing is the routed design's: every failing endpoint, not nextpnr's one critical path. The
path shown into an endpoint ("via") is still the model's worst one.

Usage (netlist from tools/fpga_synth.py, or an ``octet bitstream`` build folder's top.json):
    python tools/fpga_sta.py OUT/top.json [PERIOD_NS [GROUPS]] [--routed REPORT.json]
    python tools/fpga_sta.py OUT/top.json PERIOD_NS 0 SUBSTRING   # worst path into an endpoint
"""
import json
import re
import sys
from collections import defaultdict

ROUTE = 1.2
ROUTE_DSP = 2.8
FANOUT_K = 0.07
ROUTE_GLOBAL = 2.0


def base(t):
    return t.split("\\")[-1]


def routed_arrivals(report_path):
    """(endpoint cell, port) -> latest routed arrival in ns, from a nextpnr detailed report."""
    with open(report_path) as f:
        report = json.load(f)
    if "detailed_net_timings" not in report:
        sys.exit(f"{report_path} has no detailed_net_timings: run nextpnr with "
                 f"--detailed-timing-report")
    delays = {}
    for net in report["detailed_net_timings"]:
        for e in net.get("endpoints", []):
            # "delay" is [earliest, latest] arrival at the endpoint (setup not included).
            delay = e["delay"]
            latest = float(delay[1] if isinstance(delay, list) else delay)
            key = (e["cell"], e["port"])
            delays[key] = max(latest, delays.get(key, 0.0))
    return delays


def main():
    argv = sys.argv[1:]
    routed = None
    if "--routed" in argv:
        i = argv.index("--routed")
        routed = routed_arrivals(argv[i + 1])
        del argv[i:i + 2]
    sys.argv[1:] = argv
    path = sys.argv[1]
    period = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    top_n = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    with open(path) as f:
        d = json.load(f)
    mod = next(v for v in d["modules"].values() if v.get("attributes", {}).get("top"))
    cells = mod["cells"]
    names = {}
    for n, v in mod["netnames"].items():
        for b in v["bits"]:
            if isinstance(b, int) and (b not in names or n.count("$") < names[b].count("$")):
                names[b] = n
    driver = {}
    fanout = defaultdict(int)
    for cn, c in cells.items():
        for p, bits in c["connections"].items():
            if c["port_directions"].get(p) == "output":
                for b in bits:
                    if isinstance(b, int):
                        driver[b] = (cn, p)
            else:
                for b in bits:
                    if isinstance(b, int):
                        fanout[b] += 1

    def route_of(b, route=ROUTE):
        if b in driver and base(cells[driver[b][0]]["type"]) == "DCCA":
            return ROUTE_GLOBAL
        return route + FANOUT_K * max(0, fanout[b] - 1) ** 0.5
    sys.setrecursionlimit(100000)
    memo = {}

    def cell_out(cn, port):
        key = (cn, port)
        if key in memo:
            return memo[key]
        memo[key] = (0.0, ())  # loop guard
        c = cells[cn]
        t = base(c["type"])
        src = c.get("attributes", {}).get("src", "").split("|")[0]
        src = re.sub(r".*/(hdl|octet)/", r"\1/", src)
        conn = c["connections"]

        def worst(ports, route=ROUTE):
            best = (0.0, ())
            for p in ports:
                for b in conn.get(p, []):
                    if isinstance(b, int):
                        a = net_arrival(b)
                        r = 0.0 if p in ("FCI", "CIN") else route_of(b, route)
                        if a[0] + r > best[0]:
                            best = (a[0] + r, a[1])
            return best
        if t == "TRELLIS_FF":
            res = (0.52, (f"{src} [{cn}]",))
        elif t == "DP16KD":
            res = (4.4, (f"BRAM {src} [{cn}]",))
        elif t == "TRELLIS_DPR16X4":
            w = worst(["RAD"])
            at = max(w[0], 1.5) + 0.5
            res = (at, w[1] + (f"LUTRAM {src}@{at:.1f}",))
        elif t == "MULT18X18D":
            regs = [k for k, v in c["parameters"].items()
                    if k.startswith("REG_") and "CLK" in str(v)]
            if any(k.startswith(("REG_OUTPUT", "REG_PIPELINE")) for k in regs):
                res = (1.0, (src,))
            else:
                ins = [p for p in conn if p.startswith("A") or p.startswith("B")]
                w = worst(ins, ROUTE_DSP)
                res = (w[0] + 3.93, w[1] + (f"MULT {src}@{w[0]+3.93:.1f}",))
        elif t == "LUT4":
            w = worst(["A", "B", "C", "D"])
            res = (w[0] + 0.24, w[1] + (f"{src}@{w[0]+0.24:.1f}",))
        elif t in ("PFUMX", "L6MUX21"):
            w = worst(["ALUT", "BLUT", "D0", "D1"], 0.0)
            w2 = worst(["C0", "SD"])
            w = max(w, w2)
            res = (w[0] + 0.2, w[1])
        elif t == "CCU2C":
            w = worst(["A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1"])
            ci = worst(["CIN"])
            data_in = (w[0] + 0.45, w[1] + (f"{src}@{w[0] + 0.45:.1f}",))
            if port == "COUT":
                res = max(data_in, (ci[0] + 0.07, ci[1]))
            else:
                res = max(data_in, (ci[0] + 0.44, ci[1] + (f"{src}@{ci[0] + 0.44:.1f}",)))
        elif t in ("TRELLIS_IO", "EHXPLLL", "$scopeinfo"):
            res = (0.0, ())
        else:
            w = worst([p for p, d_ in c["port_directions"].items() if d_ == "input"])
            res = (w[0] + 0.5, w[1] + (src,))
        ob = conn.get(port, [None])[0]
        nn = names.get(ob, "?")
        if res[1] and t not in ("TRELLIS_FF", "DP16KD"):
            res = (res[0], res[1] + (f"  net {nn}@{res[0]:.1f}",))
        memo[key] = res
        return res

    def net_arrival(b):
        if b not in driver:
            return (0.0, ())
        return cell_out(*driver[b])

    endpoints = []
    for cn, c in cells.items():
        t = base(c["type"])
        conn = c["connections"]
        if t == "TRELLIS_FF":
            ports, setup = ["DI", "CE", "LSR", "M"], 0.2
        elif t == "DP16KD":
            ports, setup = [p for p in conn if p.startswith(("DI", "AD", "WE", "CE", "OCE"))], 0.5
        elif t == "TRELLIS_DPR16X4":
            ports, setup = ["DI", "WAD", "WRE"], 0.3
        elif t == "MULT18X18D":
            regs = [k for k, v in c["parameters"].items()
                    if k.startswith("REG_INPUT") and "CLK" in str(v)]
            if not regs:
                continue
            ports, setup = [p for p in conn if p[0] in "AB"], 0.3
        else:
            continue
        for p in ports:
            for b in conn.get(p, []):
                if isinstance(b, int):
                    a = net_arrival(b)
                    r = route_of(b, ROUTE_DSP if t == "MULT18X18D" else ROUTE)
                    at = a[0] + r + setup
                    if routed is not None:
                        at = routed.get((cn, p), 0.0)   # not in the report: untimed
                    endpoints.append((at, cn, p, a[1]))
    endpoints.sort(key=lambda e: -e[0])
    if len(sys.argv) > 4:
        for e in endpoints:
            if sys.argv[4] in e[1]:
                print(f"{e[0]:.1f} {e[1]}.{e[2]}")
                last = None
                for s_ in e[3]:
                    k = s_.split("@")[0]
                    if k != last and not k.startswith("/share") and "$" not in k.split()[-1][:1]:
                        print("   ", s_)
                    last = k
                return
    fail = [e for e in endpoints if e[0] > period]
    print(f"{len(endpoints)} endpoints, {len(fail)} over {period} ns; "
          f"worst {endpoints[0][0]:.1f} ns" +
          (f" (routed arrivals of {len(routed)} endpoints)" if routed is not None else ""))
    groups = defaultdict(list)
    for e in fail:
        trail = [s.split("@")[0] for s in e[3] if s.startswith(("hdl/", "octet/"))]
        reg = re.sub(r"(_TRELLIS_FF_Q|_DO[AB]?\d+|\.\d+_|_LUT4|_WRE|_CCU2C).*", "", e[1])
        reg = re.sub(r"\.\d+\.\d+.*", "", reg)
        key = (trail[0] if trail else "?", reg)
        groups[key].append(e)
    rows = sorted(groups.items(), key=lambda kv: -max(e[0] for e in kv[1]))
    for (a, b), es in rows[:top_n]:
        w = max(es, key=lambda e: e[0])
        seen = []
        for s in [x.split("@")[0] for x in w[3]]:
            if s.startswith(("hdl/", "octet/", "/tmp/venv1")) and s not in seen:
                seen.append(s)
        print(f"{w[0]:5.1f} ns x{len(es):5d}  {a} -> {b}   e.g. {w[1][:60]}.{w[2]}")
        print("        via " + " > ".join(seen[:14]))


if __name__ == "__main__":
    main()
