#!/usr/bin/env python3
"""gRPC workload against mom, driven by Python grpcio with stubs that grpcio-tools generates from
broker/proto/mom/v1/broker.proto at run time (nothing generated is checked in).

Run by tests/tests/grpc.rs against a broker it started. Everything comes from the environment:

    MOM_GRPC_TARGET     host:port of the broker's gRPC listener
    MOM_GRPC_TOKEN      the admin's bearer token
    MOM_GRPC_PROTO_DIR  the proto include directory (broker/proto)
    MOM_GRPC_PREFIX     prefix of the queue and topic names this run creates (default "py")
    MOM_GRPC_CA         when set, the PEM file of the CA to verify the server against: the
                        channel is TLS (grpcio's ssl_channel_credentials), and a channel that
                        trusts only the system's CAs must fail its handshake first

Exits 0 when every step passed, 1 otherwise; prints one line per step and the cause of a failure.
"""

import os
import queue
import sys
import tempfile
import threading
import traceback

import grpc
from grpc_tools import protoc

TARGET = os.environ["MOM_GRPC_TARGET"]
TOKEN = os.environ["MOM_GRPC_TOKEN"]
PROTO_DIR = os.environ["MOM_GRPC_PROTO_DIR"]
PREFIX = os.environ.get("MOM_GRPC_PREFIX", "py")
CA = os.environ.get("MOM_GRPC_CA")
WAIT = 10  # seconds allowed for a message to arrive on the stream


def generate():
    """Generates broker_pb2 and broker_pb2_grpc into a temp dir and imports them."""
    out = tempfile.mkdtemp(prefix="mom-grpc-py-")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main([
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        "mom/v1/broker.proto",
    ])
    if rc != 0:
        raise SystemExit(f"protoc failed with {rc}")
    sys.path.insert(0, out)
    from mom.v1 import broker_pb2, broker_pb2_grpc  # noqa: E402
    return broker_pb2, broker_pb2_grpc


pb, pb_grpc = generate()
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def check(cond, what):
    """An assertion that holds under PYTHONOPTIMIZE too (bare `assert` is stripped there)."""
    if not cond:
        raise AssertionError(what)


def error_code(err):
    """The API's error code of a failed call (the `mom-error-code` trailing metadata)."""
    return dict(err.trailing_metadata() or ()).get("mom-error-code")


def expect_error(call, status, code):
    try:
        call()
    except grpc.RpcError as err:
        check(err.code() == status, f"expected {status}, got {err.code()}: {err.details()}")
        check(error_code(err) == code, f"expected {code}, got {error_code(err)}")
        return
    raise AssertionError(f"expected {status}/{code}, the call succeeded")


def queues(stub):
    q = f"{PREFIX}-orders"
    created = stub.CreateQueue(pb.CreateQueueRequest(name=q), metadata=AUTH)
    check(created.created and created.queue.config.visibility_timeout_s > 0, created)
    sent = stub.Send(pb.SendRequest(queue=q, message=pb.OutgoingMessage(body="one", attributes={"k": "v"})), metadata=AUTH)
    batch = stub.SendBatch(pb.SendBatchRequest(queue=q, messages=[
        pb.OutgoingMessage(body="two"), pb.OutgoingMessage(body="bad", attributes={"bad key": "x"}),
    ]), metadata=AUTH)
    kinds = [r.WhichOneof("result") for r in batch.results]
    check(kinds == ["id", "error"], kinds)
    check(batch.results[1].error.code == "invalid_request", batch)
    got = stub.Receive(pb.ReceiveRequest(queue=q, max=10, wait_s=2), metadata=AUTH).messages
    check([m.body for m in got] == ["one", "two"], got)
    check(got[0].id == sent.id and got[0].attributes["k"] == "v" and got[0].receive_count == 1, got[0])
    acked = stub.Ack(pb.AckRequest(queue=q, receipts=[m.receipt for m in got]), metadata=AUTH)
    check([r.HasField("error") for r in acked.results] == [False, False], acked)
    again = stub.Ack(pb.AckRequest(queue=q, receipts=[got[0].receipt]), metadata=AUTH)
    check(again.results[0].error.code == "receipt_invalid", again)
    # A message for the Rust test to receive over HTTP.
    stub.CreateQueue(pb.CreateQueueRequest(name=f"{PREFIX}-cross"), metadata=AUTH)
    stub.Send(pb.SendRequest(queue=f"{PREFIX}-cross", message=pb.OutgoingMessage(body="from python")), metadata=AUTH)


def errors(stub):
    expect_error(lambda: stub.Receive(pb.ReceiveRequest(queue=f"{PREFIX}-orders", max=0), metadata=AUTH),
                 grpc.StatusCode.INVALID_ARGUMENT, "invalid_request")
    expect_error(lambda: stub.GetQueue(pb.GetQueueRequest(name=f"{PREFIX}-missing"), metadata=AUTH),
                 grpc.StatusCode.NOT_FOUND, "queue_not_found")
    expect_error(lambda: stub.ListQueues(pb.ListQueuesRequest()),
                 grpc.StatusCode.UNAUTHENTICATED, "unauthenticated")


def subscribe(stub):
    topic, sub = f"{PREFIX}-feed", "live"
    stub.CreateTopic(pb.CreateTopicRequest(name=topic), metadata=AUTH)
    stub.CreateSubscription(pb.CreateSubscriptionRequest(
        topic=topic, name=sub, config=pb.SubscriptionConfig(ack_deadline_s=1)), metadata=AUTH)
    stream = stub.Subscribe(pb.SubscribeRequest(topic=topic, subscription=sub), metadata=AUTH)
    arrived = queue.Queue()

    def read():
        try:
            for m in stream:
                arrived.put(m)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                arrived.put(err)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def next_message():
        m = arrived.get(timeout=WAIT)
        if isinstance(m, Exception):
            raise m
        return m

    stub.Publish(pb.PublishRequest(topic=topic, messages=[
        pb.OutgoingMessage(body="a"), pb.OutgoingMessage(body="b")]), metadata=AUTH)
    first = sorted([next_message(), next_message()], key=lambda m: m.body)
    check([m.body for m in first] == ["a", "b"] and all(m.receive_count == 1 for m in first), first)
    # Ack "b" only: "a" comes again after the ack deadline.
    stub.Ack(pb.AckRequest(topic=topic, subscription=sub, receipts=[first[1].receipt]), metadata=AUTH)
    again = next_message()
    check((again.body, again.receive_count) == ("a", 2), again)
    acked = stub.Ack(pb.AckRequest(topic=topic, subscription=sub, receipts=[again.receipt]), metadata=AUTH)
    check(not acked.results[0].HasField("error"), acked)
    stream.cancel()
    reader.join(timeout=WAIT)


def channel():
    """The channel to TARGET: TLS verified against MOM_GRPC_CA when it is set, else plain."""
    if not CA:
        return grpc.insecure_channel(TARGET)
    with open(CA, "rb") as f:
        return grpc.secure_channel(TARGET, grpc.ssl_channel_credentials(root_certificates=f.read()))


def untrusted(stub):
    """Without the CA the server's certificate is not trusted: the TLS checks are real."""
    if not CA:
        return
    with grpc.secure_channel(TARGET, grpc.ssl_channel_credentials()) as plain:
        other = pb_grpc.BrokerStub(plain)
        try:
            other.ListQueues(pb.ListQueuesRequest(), metadata=AUTH, timeout=WAIT)
        except grpc.RpcError as err:
            check(err.code() == grpc.StatusCode.UNAVAILABLE, f"expected UNAVAILABLE, got {err.code()}")
            return
    raise AssertionError("a channel without the CA trusted the server's certificate")


def main():
    failed = False
    with channel() as chan:
        stub = pb_grpc.BrokerStub(chan)
        for step in (queues, errors, subscribe, untrusted):
            try:
                step(stub)
                print(f"ok   {step.__name__}")
            except Exception:  # noqa: BLE001 - report every failing step
                failed = True
                print(f"FAIL {step.__name__}")
                traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
