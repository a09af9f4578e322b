"""No-op ceilings of candidate serving stacks, measured in one run with one load generator.

Each stack serves the same two no-op methods (``RegisterEvent`` unary, ``StreamEvents`` client-streaming):
hypercorn + connectrpc (what ``scrawn serve`` runs), pyvoy (Envoy) + connectrpc, granian + connectrpc,
grpcio's asyncio server (C-core HTTP/2, gRPC only) and ``@grpc/grpc-js`` on Node (the upstream Scrawn
backend's stack). h2load (Debian's nghttp2-client) drives them, so the client is not the bottleneck; the
server's CPU comes from /proc (its whole process tree). Before measuring, a real grpcio client checks each
stack answers both methods with an OK status in the trailers, and httpx checks Connect over HTTP/1.1 where
the stack claims it.

    python benchmarks/serving.py [--rounds 3] [--calls 20000] [--stacks hypercorn,pyvoy,...] \
        [--python /path/to/venv/bin/python]   # a venv that also has pyvoy and granian

Stacks whose server is not installed are reported as such, not skipped silently.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from scrawn._proto.event.v1 import event_pb2 as pb  # noqa: E402

SERVICE = "/event.v1.EventService"
HZ = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def commands(python: str, port: int) -> dict[str, list[str] | None]:
    """How to start each stack on PORT (None: not installed for that Python)."""
    bindir = Path(python).parent
    pyvoy, granian = bindir / "pyvoy", bindir / "granian"
    node = shutil.which("node")
    app = "benchmarks.noop_server:app"
    return {
        "hypercorn": [python, "benchmarks/noop_server.py", "--port", str(port)],
        "pyvoy": [str(pyvoy), app, "--port", str(port)] if pyvoy.exists() else None,
        "granian": (
            [str(granian), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port), app]
            if granian.exists()
            else None
        ),
        "grpcio": [python, "benchmarks/noop_grpcio.py", str(port)],
        "grpc-js": [node, "benchmarks/noop_grpcjs.mjs", str(port)] if node else None,
    }


def grpc_frame(message: Any) -> bytes:
    data = message.SerializeToString()
    return b"\x00" + len(data).to_bytes(4, "big") + data


def register() -> Any:
    return pb.RegisterEventRequest(
        type=pb.BASIC_USAGE,
        userId="user_0001",
        basicUsage=pb.BasicUsage(amount=250),
        idempotencyKey="0f9c2b1e8d7a4c3b9e1f2a3b4c5d6e7f",
    )


def stream_item(i: int) -> Any:
    return pb.StreamEventRequest(
        type=pb.BASIC_USAGE,
        userId=f"user_{i % 100:04d}",
        basicUsage=pb.BasicUsage(amount=250),
        idempotencyKey=f"{i:032x}",
    )


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of PID and its descendants that are alive now."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / HZ
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                time.sleep(0.5)  # bound is not always serving yet (pyvoy starts Envoy, then Python)
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("did not listen in time")


def check(port: int, stack: str) -> dict[str, bool]:
    """Which protocols the stack answers correctly: gRPC (status in the trailers) and, for the ASGI stacks,
    Connect unary over HTTP/1.1."""
    import grpc
    import httpx

    found: dict[str, bool] = {}
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        encode = pb.RegisterEventRequest.SerializeToString
        unary = channel.unary_unary(f"{SERVICE}/RegisterEvent", request_serializer=encode)
        stream = channel.stream_unary(f"{SERVICE}/StreamEvents", request_serializer=encode)
        try:
            unary(register(), timeout=10)
            stream(iter([stream_item(i) for i in range(3)]), timeout=10)
            found["grpc"] = True
        except grpc.RpcError as e:
            print(f"  {stack}: gRPC check failed: {e.code()} {e.details()}", file=sys.stderr)
            found["grpc"] = False
    try:
        answer = httpx.post(
            f"http://127.0.0.1:{port}{SERVICE}/RegisterEvent",
            content=register().SerializeToString(),
            headers={"content-type": "application/proto"},
            timeout=10,
        )
        found["connect_http1"] = answer.status_code == 200
    except httpx.HTTPError:
        found["connect_http1"] = False
    return found


def h2load(port: int, method: str, body: Path, calls: int, clients: int, streams: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "h2load", "-n", str(calls), "-c", str(clients), "-m", str(streams), "-d", str(body),
            "-H", "content-type: application/grpc", "-H", "te: trailers",
            f"http://127.0.0.1:{port}{SERVICE}/{method}",
        ],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout  # fmt: skip
    seconds = float(re.search(r"finished in ([\d.]+)(m?s)", out).group(1))  # type: ignore[union-attr]
    if re.search(r"finished in [\d.]+ms", out):
        seconds /= 1000
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    assert done, out
    latency = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out)  # min max mean sd
    return {"seconds": seconds, "succeeded": int(done.group(2)), "failed": int(done.group(3)),
            "mean_latency": latency.group(1) if latency else "?"}  # fmt: skip


def measure(stack: str, argv: list[str], port: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    log = (work / f"{stack}.log").open("wb")
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, process)
        result: dict[str, Any] = {"protocols": check(port, stack)}
        for kind, method, body, calls, clients, streams, per_call in (
            ("unary", "RegisterEvent", work / "unary.bin", args.calls, 4, 16, 1),
            ("stream", "StreamEvents", work / "stream.bin", max(args.calls // 100, 20), 4, 1, args.batch),
        ):
            h2load(port, method, body, min(calls, 2000), clients, streams)  # warm-up
            cpu0 = tree_cpu(process.pid)
            run = h2load(port, method, body, calls, clients, streams)
            cpu = tree_cpu(process.pid) - cpu0
            events = run["succeeded"] * per_call
            result[kind] = {
                **run,
                "events_per_s": events / run["seconds"],
                "server_cpu_us_per_event": cpu / events * 1e6 if events else None,
            }
        return result
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the Python (venv) the Python stacks run in")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20000, help="unary calls per measurement")
    parser.add_argument("--batch", type=int, default=1000, help="messages per StreamEvents call")
    parser.add_argument("--stacks", default="hypercorn,pyvoy,granian,grpcio,grpc-js")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / f"serving-{dt.date.today()}"))
    args = parser.parse_args()
    if not shutil.which("h2load"):
        sys.exit("h2load is missing: apt-get install -y nghttp2-client")
    chosen = args.stacks.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "unary.bin").write_bytes(grpc_frame(register()))
        (work / "stream.bin").write_bytes(b"".join(grpc_frame(stream_item(i)) for i in range(args.batch)))
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in chosen}
        missing: list[str] = []
        for r in range(args.rounds):  # interleaved: each round measures every stack once
            for stack in chosen:
                port = free_port()
                argv = commands(args.python, port)[stack]
                if argv is None:
                    if r == 0:
                        missing.append(stack)
                    continue
                try:
                    runs[stack].append(measure(stack, argv, port, args, work))
                except Exception as e:  # a stack that cannot serve is a finding, not a crash
                    log = (work / f"{stack}.log").read_text()[-2000:]
                    print(f"  {stack}: {e!r}; log: {log}", file=sys.stderr)
                    runs[stack].append({"error": repr(e)})
                print(f"round {r + 1} {stack}: {json.dumps(runs[stack][-1])[:300]}", file=sys.stderr)
    summary = summarise(runs)
    report = {
        "date": str(dt.date.today()),
        "args": vars(args),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "missing": missing,
        "summary": summary,
        "runs": runs,
    }
    Path(args.out + ".json").write_text(json.dumps(report, indent=2))
    Path(args.out + ".md").write_text(markdown(report))
    print(markdown(report))


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for stack, rs in runs.items():
        good = [r for r in rs if "error" not in r]
        if not good:
            out[stack] = {"error": rs[0]["error"] if rs else "not installed"}
            continue
        out[stack] = {"protocols": good[0]["protocols"]}
        for kind in ("unary", "stream"):
            out[stack][kind] = {
                k: statistics.median(r[kind][k] for r in good)
                for k in ("events_per_s", "server_cpu_us_per_event")
                if all(r[kind][k] is not None for r in good)
            }
            out[stack][kind]["failed"] = sum(r[kind]["failed"] for r in good)
    return out


def markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    ref = s.get("grpc-js", {})
    lines = [
        f"# Serving stacks, no-op ceilings — {report['date']}",
        "",
        f"`python benchmarks/serving.py` ({report['args']['rounds']} interleaved rounds, medians; "
        f"{report['args']['calls']} unary calls over 4 HTTP/2 connections × 16 streams; StreamEvents of "
        f"{report['args']['batch']} messages, 4 at a time; h2load as the client on the same "
        f"{report['cpus']}-core machine; load average before the run {report['load_before'][0]:.2f}).",
        "",
        "| stack | gRPC ok | Connect HTTP/1.1 ok | unary calls/s | server CPU µs/call | × grpc-js CPU "
        "| stream events/s | server CPU µs/event | failed |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for stack, v in s.items():
        if "error" in v:
            lines.append(f"| {stack} | {v['error']} | | | | | | | |")
            continue
        u, st, p = v["unary"], v["stream"], v["protocols"]
        if not p["grpc"]:  # its answers were errors: h2load's rates say nothing about serving gRPC
            lines.append(f"| {stack} | NO | {'yes' if p['connect_http1'] else 'no'} | — | — | | — | — | |")
            continue
        ratio = ""
        ours, theirs = u.get("server_cpu_us_per_event"), ref.get("unary", {}).get("server_cpu_us_per_event")
        if ours and theirs:
            ratio = f"{ours / theirs:.1f}×"
        lines.append(
            f"| {stack} | yes | {'yes' if p['connect_http1'] else 'no'} "
            f"| {u.get('events_per_s', 0):,.0f} | {u.get('server_cpu_us_per_event', 0):,.0f} | {ratio} "
            f"| {st.get('events_per_s', 0):,.0f} | {st.get('server_cpu_us_per_event', 0):,.1f} "
            f"| {u['failed'] + st['failed']} |"
        )
    lines += ["", "A stack whose gRPC check failed shows no rates: h2load counts HTTP 200s, not gRPC errors."]
    if report["missing"]:
        lines += ["", f"Not installed for that Python: {', '.join(report['missing'])}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
