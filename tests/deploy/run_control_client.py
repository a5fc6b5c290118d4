#!/usr/bin/env python3
"""Run control from Python, as a Bluesky plan or any script would drive it (docs/run-control.md):
pyzmq and the Protobuf classes protoc generates from stream.proto, against the real
anisoflow-ingest binary. Checks that the documented schema is all a client needs: a refused
start names the field at fault, a good one opens the run, next sets the state, status reports
it with the run log, stop ends it; ingest then exits 0 on SIGTERM.

Usage: run_control_client.py INGEST_BINARY PYTHON_PROTO_DIR
"""
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import zmq

sys.path.insert(0, sys.argv[2])
from anisoflow.stream.v1 import stream_pb2 as pb  # noqa: E402 (generated at build time)


def run_control(address, request, timeout_ms=5000):
    """One request, one reply, on a fresh REQ socket (the pattern of docs/run-control.md)."""
    context = zmq.Context.instance()
    socket = context.socket(zmq.REQ)
    socket.linger = 0
    socket.connect(address)
    envelope = pb.Envelope(schema_version=1, run_control_request=request)
    socket.send(envelope.SerializeToString())
    if not socket.poll(timeout_ms):
        socket.close()
        raise TimeoutError(f"{address}: no reply within {timeout_ms} ms")
    reply = pb.Envelope.FromString(socket.recv()).run_control_reply
    socket.close()
    return reply


def experiment():
    config = pb.ExperimentConfig(
        composition="Zr52.5Cu17.9Ni14.6Al10Ti5", density_per_cubic_angstrom=0.0553, nu=0.37,
        loading_axis_chi_deg=90.0, mode=pb.EXTRACTION_MODE_PN,
        normalisation=pb.NORMALISATION_HIGH_Q, q_min_inv_angstrom=0.5, q_max_inv_angstrom=12.0,
        n_q=500, n_chi=36, r_max_angstrom=25.0, n_r=1000, r_fit_min_angstrom=2.3,
        r_fit_max_angstrom=20.0)
    config.geometry.CopyFrom(pb.PoniGeometry(
        distance_m=0.35, poni1_m=0.2048, poni2_m=0.2048, wavelength_m=1.2398e-11,
        pixel1_m=2e-4, pixel2_m=2e-4, detector_rows=2048, detector_cols=2048,
        detector_type="Detector"))
    return config


def check(problems, condition, text):
    if not condition:
        problems.append(text)


def main():
    ingest_binary = sys.argv[1]
    problems = []
    with tempfile.TemporaryDirectory(prefix="anisoflow-run-control-") as scratch:
        scratch = Path(scratch)
        address = f"ipc://{scratch}/run-control.sock"
        (scratch / "ingest.toml").write_text(
            f'[source]\nkind = "dectris_stream"\ndectris_address = ">tcp://127.0.0.1:9"\n'
            f'[metrics]\nenabled = false\n'
            f'[endpoints.frames_out]\naddress = "@ipc://{scratch}/frames.sock"\n'
            f'[endpoints.control_out]\naddress = "@ipc://{scratch}/control.sock"\n'
            f'[endpoints.run_control]\naddress = "@{address}"\n')
        ingest = subprocess.Popen([ingest_binary, "--config", str(scratch / "ingest.toml")],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            status = run_control(address, pb.RunControlRequest(status=pb.GetStatus()), 20000)
            check(problems, status.ok and status.status.run_id == "", f"status: {status}")

            bad = experiment()
            bad.geometry.distance_m = 0.0
            reply = run_control(address, pb.RunControlRequest(
                start=pb.StartRun(run_id="py-1", config=bad)))
            check(problems, not reply.ok and "geometry.distance_m is 0" in reply.error,
                  f"a start without a distance: {reply}")

            reply = run_control(address, pb.RunControlRequest(
                start=pb.StartRun(run_id="py-1", config=experiment(),
                                  initial_state=pb.SetState(kind=pb.FRAME_KIND_DARK))))
            check(problems, reply.ok and reply.status.run_id == "py-1", f"start: {reply}")

            reply = run_control(address, pb.RunControlRequest(next=pb.SetState(
                kind=pb.FRAME_KIND_DATA, orientation=pb.ORIENTATION_N, note="omega 90")))
            check(problems, reply.ok and reply.status.kind == pb.FRAME_KIND_DATA
                  and reply.status.orientation == pb.ORIENTATION_N, f"next: {reply}")
            types = [change.type for change in reply.status.history]
            check(problems, types == [pb.STATE_CHANGE_TYPE_RUN_STARTED,
                                      pb.STATE_CHANGE_TYPE_STATE_SET,
                                      pb.STATE_CHANGE_TYPE_STATE_SET],
                  f"the run log after next: {types}")
            check(problems, reply.status.history[-1].note == "omega 90",
                  f"the note: {reply.status.history[-1]}")

            reply = run_control(address, pb.RunControlRequest(stop=pb.StopRun(detail="plan done")))
            check(problems, reply.ok and reply.status.run_id == "", f"stop: {reply}")
            reply = run_control(address, pb.RunControlRequest(stop=pb.StopRun()))
            check(problems, not reply.ok and "no run is open" in reply.error,
                  f"a second stop: {reply}")
        finally:
            ingest.send_signal(signal.SIGTERM)
            output, _ = ingest.communicate(timeout=30)
        check(problems, ingest.returncode == 0,
              f"anisoflow-ingest exited {ingest.returncode}:\n{output}")
    for problem in problems:
        print(f"run_control_client: {problem}", file=sys.stderr)
    print(f"run_control_client: {len(problems)} problems" if problems
          else "run_control_client: every exchange as documented")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
