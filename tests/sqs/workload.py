#!/usr/bin/env python3
"""SQS workload against mom's SQS-compatible endpoint, driven by the unmodified AWS SDK for Python.

Run by tests/tests/sqs.rs against a broker it started (and again through NGINX). Everything it needs
comes from the environment:

    MOM_SQS_ENDPOINT          e.g. http://127.0.0.1:8080 (the broker, or NGINX in front of it)
    MOM_SQS_REGION            region to sign for (default us-east-1)
    MOM_SQS_KEY_ID            access key of the workload's user ("owner")
    MOM_SQS_SECRET
    MOM_SQS_OTHER_KEY_ID      access key of a second plain user without grants ("other")
    MOM_SQS_OTHER_SECRET
    MOM_SQS_RESTRICTED_QUEUE  a queue with access "restricted" owned by the owner, made through the
                              native API (SQS has no attribute for it)
    MOM_SQS_PREFIX            prefix of the queue names this run creates (default "wl")

Exits 0 when every step passed, 1 otherwise; prints one line per step and the cause of each failure.

botocore does not verify SQS's MD5 digests (only some other SDKs do), so this script recomputes
MD5OfMessageBody and MD5OfMessageAttributes itself, from SQS's documented encoding, and compares.
"""

import contextlib
import datetime
import hashlib
import json
import os
import struct
import sys
import threading
import time
import traceback
import urllib.request

import boto3
import botocore.auth
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["MOM_SQS_ENDPOINT"].rstrip("/")
REGION = os.environ.get("MOM_SQS_REGION", "us-east-1")
KEY_ID = os.environ["MOM_SQS_KEY_ID"]
SECRET = os.environ["MOM_SQS_SECRET"]
OTHER_KEY_ID = os.environ["MOM_SQS_OTHER_KEY_ID"]
OTHER_SECRET = os.environ["MOM_SQS_OTHER_SECRET"]
RESTRICTED = os.environ["MOM_SQS_RESTRICTED_QUEUE"]
PREFIX = os.environ.get("MOM_SQS_PREFIX", "wl")

DLQ_NAME = f"{PREFIX}-dlq"
MAIN_NAME = f"{PREFIX}-main"
MAX_RECEIVE_COUNT = 2

# No retries: a retried request would hide a broker answer the test should see. Reads wait longer
# than the longest long poll (20 s).
CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=40, connect_timeout=5)


def client(key_id=KEY_ID, secret=SECRET):
    return boto3.client(
        "sqs",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=CONFIG,
    )


sqs = client()


# --- checks ---------------------------------------------------------------------------------


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def eq(actual, expected, what):
    if actual != expected:
        raise Failed(f"{what}: expected {expected!r}, got {actual!r}")


def error_of(fn, *args, **kwargs):
    """Calls fn expecting a ClientError; returns (code, HTTP status, message)."""
    try:
        answer = fn(*args, **kwargs)
    except ClientError as e:
        err = e.response.get("Error", {})
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return err.get("Code"), status, err.get("Message")
    raise Failed(f"{getattr(fn, '__name__', fn)} succeeded where an error was expected: {answer!r}")


def expect_error(codes, status, fn, *args, **kwargs):
    code, got_status, message = error_of(fn, *args, **kwargs)
    codes = (codes,) if isinstance(codes, str) else codes
    check(code in codes, f"error code {code!r} (message {message!r}), expected one of {codes}")
    statuses = (status,) if isinstance(status, int) else status
    check(got_status in statuses, f"HTTP status {got_status} of {code}, expected {status}")
    return code, message


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def md5_of_attributes(attrs):
    """MD5OfMessageAttributes as SQS computes it: attributes sorted by name; name, data type and
    value each prefixed with their 4-byte big-endian length, a transport byte (1 string, 2 binary)
    before the value."""
    buf = b""

    def put(b):
        return struct.pack(">I", len(b)) + b

    for name in sorted(attrs, key=lambda n: n.encode("utf-8")):
        a = attrs[name]
        buf += put(name.encode("utf-8")) + put(a["DataType"].encode("utf-8"))
        if "BinaryValue" in a:
            buf += b"\x02" + put(bytes(a["BinaryValue"]))
        else:
            buf += b"\x01" + put(a["StringValue"].encode("utf-8"))
    return md5_hex(buf)


def check_digests(msg, sent_attrs=None):
    """A received message's digests against its body and attributes, and those against what was sent."""
    eq(msg["MD5OfBody"], md5_hex(msg["Body"].encode("utf-8")), f"MD5OfBody of {msg['Body']!r}")
    attrs = msg.get("MessageAttributes", {})
    if attrs:
        eq(msg.get("MD5OfMessageAttributes"), md5_of_attributes(attrs), f"MD5OfMessageAttributes of {msg['Body']!r}")
    if sent_attrs is not None:
        eq(normalize(attrs), normalize(sent_attrs), f"message attributes of {msg['Body']!r}")


def normalize(attrs):
    out = {}
    for k, v in attrs.items():
        if "BinaryValue" in v:
            out[k] = (v["DataType"], "b", bytes(v["BinaryValue"]))
        else:
            out[k] = (v["DataType"], "s", v["StringValue"])
    return out


def receive(url, **kwargs):
    kwargs.setdefault("MessageAttributeNames", ["All"])
    kwargs.setdefault("AttributeNames", ["All"])
    return sqs.receive_message(QueueUrl=url, **kwargs).get("Messages", [])


def receive_all(url, count, timeout=10.0, **kwargs):
    """Long-polls until `count` messages were received (or the timeout ends)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += receive(url, MaxNumberOfMessages=10, WaitTimeSeconds=1, **kwargs)
    return got


def assert_none_arrived(url, bodies, what):
    """No visible message of `url` has one of `bodies`; whatever is visible is deleted, so a
    failure here does not spill into later steps."""
    got = receive(url, WaitTimeSeconds=0, MaxNumberOfMessages=10)
    for m in got:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    arrived = [m["Body"] for m in got if m["Body"] in bodies]
    eq(arrived, [], what)


def receive_count(msg):
    return int(msg["Attributes"]["ApproximateReceiveCount"])


def queue_attrs(url, names=("All",)):
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(names))["Attributes"]


# --- the workload ---------------------------------------------------------------------------

state = {}

ATTRS = {
    "kind": {"DataType": "String", "StringValue": "order ✓"},
    "amount": {"DataType": "Number", "StringValue": "42.5"},
    "blob": {"DataType": "Binary", "BinaryValue": bytes([0, 1, 2, 253, 254, 255])},
    "count": {"DataType": "Number.int", "StringValue": "7"},
    "Zeta": {"DataType": "String.custom", "StringValue": ""},
}


def step_create():
    dlq = sqs.create_queue(QueueName=DLQ_NAME)["QueueUrl"]
    eq(dlq, f"{ENDPOINT}/000000000000/{DLQ_NAME}", "DLQ URL")
    dlq_arn = queue_attrs(dlq, ["QueueArn"])["QueueArn"]
    eq(dlq_arn, f"arn:aws:sqs:{REGION}:000000000000:{DLQ_NAME}", "DLQ ARN")
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
    attrs = {"VisibilityTimeout": "30", "RedrivePolicy": policy}
    main = sqs.create_queue(QueueName=MAIN_NAME, Attributes=attrs)["QueueUrl"]
    eq(main, f"{ENDPOINT}/000000000000/{MAIN_NAME}", "queue URL")
    # Creating again with the same attributes answers the same URL.
    eq(sqs.create_queue(QueueName=MAIN_NAME, Attributes=attrs)["QueueUrl"], main, "URL of a repeated CreateQueue")
    got = queue_attrs(main)
    eq(got["VisibilityTimeout"], "30", "VisibilityTimeout")
    redrive = json.loads(got["RedrivePolicy"])
    eq(redrive["deadLetterTargetArn"], dlq_arn, "RedrivePolicy target")
    eq(int(redrive["maxReceiveCount"]), MAX_RECEIVE_COUNT, "RedrivePolicy maxReceiveCount")
    eq(got["QueueArn"], f"arn:aws:sqs:{REGION}:000000000000:{MAIN_NAME}", "queue ARN")
    eq(got["ApproximateNumberOfMessages"], "0", "ApproximateNumberOfMessages of a new queue")
    state.update(dlq=dlq, main=main, dlq_arn=dlq_arn)


def step_empty_long_poll():
    start = time.monotonic()
    got = receive(state["main"], WaitTimeSeconds=1)
    took = time.monotonic() - start
    eq(got, [], "messages of an empty queue")
    check(0.8 <= took < 5, f"a 1 s long poll on an empty queue answered after {took:.2f} s")


def long_polls_held():
    """The broker's mom_long_polls_held gauge (0 when absent), read from its /metrics."""
    with urllib.request.urlopen(f"{ENDPOINT}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("mom_long_polls_held "):
                return float(line.split()[1])
    return 0.0


def await_held(at_least, poller, timeout=10.0):
    """Waits until the broker holds at least `at_least` long polls; fails if `poller` ended first."""
    deadline = time.monotonic() + timeout
    while long_polls_held() < at_least:
        check(poller.is_alive(), "the long poll answered before anything was sent")
        check(time.monotonic() < deadline, f"the broker did not hold the long poll within {timeout} s")
        time.sleep(0.02)


def step_send_batch_and_long_poll():
    main = state["main"]
    # A long poll waiting before anything is sent must answer as soon as the batch arrives.
    held = {}

    def poll():
        start = time.monotonic()
        held["messages"] = receive(main, MaxNumberOfMessages=10, WaitTimeSeconds=15)
        held["took"] = time.monotonic() - start

    before = long_polls_held()
    poller = threading.Thread(target=poll)
    poller.start()
    await_held(before + 1, poller)
    entries = [
        {"Id": f"e{i}", "MessageBody": f"batch message {i} ü", "MessageAttributes": ATTRS} for i in range(5)
    ]
    answer = sqs.send_message_batch(QueueUrl=main, Entries=entries)
    eq(answer.get("Failed", []), [], "failed entries of SendMessageBatch")
    eq(sorted(s["Id"] for s in answer["Successful"]), [f"e{i}" for i in range(5)], "successful entry ids")
    for s in answer["Successful"]:
        i = int(s["Id"][1:])
        eq(s["MD5OfMessageBody"], md5_hex(entries[i]["MessageBody"].encode("utf-8")), f"MD5OfMessageBody of {s['Id']}")
        eq(s["MD5OfMessageAttributes"], md5_of_attributes(ATTRS), f"MD5OfMessageAttributes of {s['Id']}")
    ids = {s["MessageId"]: int(s["Id"][1:]) for s in answer["Successful"]}
    poller.join(30)
    check(not poller.is_alive(), "the held long poll did not answer")
    check(held["messages"], f"the held long poll answered nothing after {held['took']:.2f} s")
    check(held["took"] < 5, f"the held long poll answered {held['took']:.2f} s after it started")
    got = held["messages"] + receive_all(main, 5 - len(held["messages"]))
    eq(sorted(m["MessageId"] for m in got), sorted(ids), "received message ids")
    for m in got:
        eq(m["Body"], f"batch message {ids[m['MessageId']]} ü", "body")
        check_digests(m, ATTRS)
        eq(receive_count(m), 1, "ApproximateReceiveCount of a first delivery")
        sent = int(m["Attributes"]["SentTimestamp"])
        check(abs(sent / 1000 - time.time()) < 60, f"SentTimestamp {sent} is not now")
    # Only the selected message attributes come back, with their digest.
    sqs.change_message_visibility(QueueUrl=main, ReceiptHandle=got[0]["ReceiptHandle"], VisibilityTimeout=0)
    again = receive_all(main, 1, MessageAttributeNames=["kind", "blob"])
    eq(len(again), 1, "messages made visible again")
    eq(sorted(again[0].get("MessageAttributes", {})), ["blob", "kind"], "attributes selected by name")
    check_digests(again[0], {k: ATTRS[k] for k in ("kind", "blob")})
    eq(receive_count(again[0]), 2, "ApproximateReceiveCount of a second delivery")
    got[0] = again[0]
    state["batch"] = sorted(got, key=lambda m: ids[m["MessageId"]])


def step_change_visibility():
    main = state["main"]
    msgs = state["batch"]
    # Batch: two messages back to visible at once, a third kept invisible for longer.
    answer = sqs.change_message_visibility_batch(
        QueueUrl=main,
        Entries=[
            {"Id": "a", "ReceiptHandle": msgs[1]["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "b", "ReceiptHandle": msgs[2]["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "c", "ReceiptHandle": msgs[3]["ReceiptHandle"], "VisibilityTimeout": 120},
        ],
    )
    eq(answer.get("Failed", []), [], "failed entries of ChangeMessageVisibilityBatch")
    eq(sorted(s["Id"] for s in answer["Successful"]), ["a", "b", "c"], "successful entries")
    again = receive_all(main, 2)
    eq(sorted(m["MessageId"] for m in again), sorted([msgs[1]["MessageId"], msgs[2]["MessageId"]]), "redelivered ids")
    for m in again:
        eq(receive_count(m), 2, "ApproximateReceiveCount after ChangeMessageVisibilityBatch")
        check_digests(m, ATTRS)
    msgs[1], msgs[2] = sorted(again, key=lambda m: m["MessageId"] != msgs[1]["MessageId"])
    # Nothing else is visible: message 0 was received again, 3 was extended, 4 is still in flight.
    eq(receive(main, WaitTimeSeconds=0, MaxNumberOfMessages=10), [], "messages visible while all are in flight")
    attrs = queue_attrs(main, ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    eq(attrs, {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "5"}, "queue counts")


def step_delete():
    main = state["main"]
    msgs = state["batch"]
    sqs.delete_message(QueueUrl=main, ReceiptHandle=msgs[0]["ReceiptHandle"])
    answer = sqs.delete_message_batch(
        QueueUrl=main,
        Entries=[{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs[1:], 1)]
        + [{"Id": "bogus", "ReceiptHandle": "not-a-receipt-handle"}],
    )
    eq(sorted(s["Id"] for s in answer["Successful"]), ["d1", "d2", "d3", "d4"], "deleted entries")
    failed = answer.get("Failed", [])
    eq([f["Id"] for f in failed], ["bogus"], "failed entries of DeleteMessageBatch")
    eq(failed[0]["Code"], "ReceiptHandleIsInvalid", "code of a bogus receipt handle")
    eq(failed[0]["SenderFault"], True, "SenderFault of a bogus receipt handle")
    expect_error("ReceiptHandleIsInvalid", 400, sqs.delete_message, QueueUrl=main, ReceiptHandle="not-a-receipt-handle")
    attrs = queue_attrs(main, ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    eq(attrs, {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}, "counts after deleting all")


def step_dead_letter():
    main, dlq = state["main"], state["dlq"]
    sent = sqs.send_message(QueueUrl=main, MessageBody="doomed", MessageAttributes={"kind": ATTRS["kind"]})
    eq(sent["MD5OfMessageBody"], md5_hex(b"doomed"), "MD5OfMessageBody of SendMessage")
    eq(sent["MD5OfMessageAttributes"], md5_of_attributes({"kind": ATTRS["kind"]}), "MD5OfMessageAttributes of SendMessage")
    # Received and never deleted: maxReceiveCount deliveries, then it moves to the DLQ.
    for n in range(1, MAX_RECEIVE_COUNT + 1):
        got = receive_all(main, 1, timeout=10, VisibilityTimeout=1)
        eq([m["MessageId"] for m in got], [sent["MessageId"]], f"delivery {n} of the doomed message")
        eq(receive_count(got[0]), n, f"ApproximateReceiveCount of delivery {n}")
    # A further delivery would be number maxReceiveCount+1: the message goes to the DLQ instead.
    late = receive(main, WaitTimeSeconds=3, VisibilityTimeout=1)
    eq(late, [], f"a delivery after {MAX_RECEIVE_COUNT} receives")
    dead = receive_all(dlq, 1, timeout=10)
    eq(len(dead), 1, "messages in the DLQ")
    eq(dead[0]["Body"], "doomed", "body of the dead letter")
    check_digests(dead[0], {"kind": ATTRS["kind"]})
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=dead[0]["ReceiptHandle"])
    eq(receive(main, WaitTimeSeconds=0), [], "messages left in the source queue")


def step_queue_attributes():
    main, dlq_arn = state["main"], state["dlq_arn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    sqs.set_queue_attributes(
        QueueUrl=main,
        Attributes={
            "VisibilityTimeout": "45",
            "DelaySeconds": "3",
            "MessageRetentionPeriod": "3600",
            "MaximumMessageSize": "2048",
            "RedrivePolicy": policy,
        },
    )
    got = queue_attrs(main)
    for k, v in [("VisibilityTimeout", "45"), ("DelaySeconds", "3"), ("MessageRetentionPeriod", "3600"), ("MaximumMessageSize", "2048")]:
        eq(got[k], v, k)
    eq(int(json.loads(got["RedrivePolicy"])["maxReceiveCount"]), 5, "changed maxReceiveCount")
    # Only the names asked for.
    eq(set(queue_attrs(main, ["DelaySeconds", "VisibilityTimeout"])), {"DelaySeconds", "VisibilityTimeout"}, "attributes by name")
    # DelaySeconds holds a new message back.
    sent_at = time.monotonic()
    sqs.send_message(QueueUrl=main, MessageBody="delayed")
    eq(receive(main, WaitTimeSeconds=0), [], "messages right after a send to a queue with DelaySeconds 3")
    eq(queue_attrs(main, ["ApproximateNumberOfMessagesDelayed"])["ApproximateNumberOfMessagesDelayed"], "1", "delayed count")
    got = receive_all(main, 1, timeout=10)
    took = time.monotonic() - sent_at
    eq([m["Body"] for m in got], ["delayed"], "the delayed message")
    check(took >= 2.9, f"a message delayed 3 s was received after {took:.2f} s")
    sqs.delete_message(QueueUrl=main, ReceiptHandle=got[0]["ReceiptHandle"])
    # MaximumMessageSize bounds the body.
    expect_error("InvalidParameterValue", 400, sqs.send_message, QueueUrl=main, MessageBody="x" * 3000)
    # Bad values and names are refused with SQS's codes.
    expect_error("InvalidAttributeValue", 400, sqs.set_queue_attributes, QueueUrl=main, Attributes={"VisibilityTimeout": "soon"})
    expect_error("InvalidAttributeName", 400, sqs.set_queue_attributes, QueueUrl=main, Attributes={"NoSuchAttribute": "1"})
    # An empty RedrivePolicy removes it; the rest back to defaults-ish for the next steps.
    sqs.set_queue_attributes(QueueUrl=main, Attributes={"RedrivePolicy": "", "DelaySeconds": "0", "MaximumMessageSize": "262144"})
    got = queue_attrs(main)
    check("RedrivePolicy" not in got, f"RedrivePolicy still set after removing it: {got.get('RedrivePolicy')}")
    eq(got["DelaySeconds"], "0", "DelaySeconds after reset")


def step_current_fidelity():
    """What SQS answers and boto3 users rely on (issue 22): no `Messages` key in an empty receive,
    `ALL` in any case, system attributes, UUID message ids, tags, ReceiveMessageWaitTimeSeconds."""
    main = state["main"]
    empty = sqs.receive_message(QueueUrl=main, WaitTimeSeconds=0)
    check("Messages" not in empty, f"an empty receive answered Messages: {empty}")
    sent = sqs.send_message(
        QueueUrl=main, MessageBody="fidelity", MessageAttributes={"kind": {"DataType": "String", "StringValue": "f"}},
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-wl"}},
    )
    mid = sent["MessageId"]
    check(len(mid) == 36 and mid[14] == "8", f"MessageId {mid!r} is not a version 8 UUID")
    got = sqs.receive_message(QueueUrl=main, WaitTimeSeconds=1, MessageSystemAttributeNames=["ALL"], MessageAttributeNames=["all"])
    m = got["Messages"][0]
    eq(m["MessageId"], mid, "received MessageId")
    attrs = m.get("Attributes", {})
    for name in ("SenderId", "SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp"):
        check(name in attrs, f"no {name} in {attrs}")
    eq(attrs.get("AWSTraceHeader"), "Root=1-wl", "AWSTraceHeader")
    eq(m["MessageAttributes"]["kind"]["StringValue"], "f", "a message attribute asked for as 'all'")
    sqs.delete_message(QueueUrl=main, ReceiptHandle=m["ReceiptHandle"])
    sqs.tag_queue(QueueUrl=main, Tags={"team": "workload", "env": "ci"})
    sqs.untag_queue(QueueUrl=main, TagKeys=["env"])
    eq(sqs.list_queue_tags(QueueUrl=main).get("Tags"), {"team": "workload"}, "queue tags")
    sqs.set_queue_attributes(QueueUrl=main, Attributes={"ReceiveMessageWaitTimeSeconds": "1"})
    start = time.monotonic()
    sqs.receive_message(QueueUrl=main)
    took = time.monotonic() - start
    check(0.8 <= took < 5, f"a receive on a queue with ReceiveMessageWaitTimeSeconds 1 answered after {took:.2f} s")
    sqs.set_queue_attributes(QueueUrl=main, Attributes={"ReceiveMessageWaitTimeSeconds": "0"})
    policy = json.dumps({"deadLetterTargetArn": state["dlq_arn"], "maxReceiveCount": MAX_RECEIVE_COUNT})
    sqs.set_queue_attributes(QueueUrl=main, Attributes={"RedrivePolicy": policy})
    eq(sqs.list_dead_letter_source_queues(QueueUrl=state["dlq"])["queueUrls"], [main], "dead-letter sources")
    sqs.set_queue_attributes(QueueUrl=main, Attributes={"RedrivePolicy": ""})
    eq(sqs.list_dead_letter_source_queues(QueueUrl=state["dlq"])["queueUrls"], [], "dead-letter sources after removing RedrivePolicy")


def step_purge():
    main = state["main"]
    answer = sqs.send_message_batch(QueueUrl=main, Entries=[{"Id": str(i), "MessageBody": f"purge me {i}"} for i in range(3)])
    eq(len(answer["Successful"]), 3, "messages sent before purging")
    in_flight = receive(main, WaitTimeSeconds=1)
    eq(len(in_flight), 1, "message in flight before purging")
    eq(queue_attrs(main, ["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"], "2", "available before purging")
    sqs.purge_queue(QueueUrl=main)
    eq(receive(main, WaitTimeSeconds=1, MaxNumberOfMessages=10), [], "messages after PurgeQueue")
    attrs = queue_attrs(main, ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    eq(attrs, {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}, "counts after PurgeQueue")


def step_list_and_url():
    urls = sqs.list_queues().get("QueueUrls", [])
    for name in (MAIN_NAME, DLQ_NAME, RESTRICTED):
        check(f"{ENDPOINT}/000000000000/{name}" in urls, f"{name} missing from ListQueues: {urls}")
    eq(sqs.list_queues(QueueNamePrefix=MAIN_NAME).get("QueueUrls"), [state["main"]], "ListQueues by prefix")
    eq(sqs.list_queues(QueueNamePrefix=f"{PREFIX}-nothing").get("QueueUrls", []), [], "ListQueues without a match")
    # Paginated: MaxResults pages, NextToken leads on (boto3's paginator follows it).
    names = [f"{PREFIX}-page-{c}" for c in "abc"]
    for name in names:
        sqs.create_queue(QueueName=name)
    try:
        first = sqs.list_queues(QueueNamePrefix=f"{PREFIX}-page-", MaxResults=2)
        eq(len(first.get("QueueUrls", [])), 2, f"queues on a page of MaxResults 2: {first.get('QueueUrls')}")
        check(first.get("NextToken"), f"no NextToken on a full page of ListQueues: {first}")
        pages = sqs.get_paginator("list_queues").paginate(QueueNamePrefix=f"{PREFIX}-page-", PaginationConfig={"PageSize": 2})
        listed = [url for page in pages for url in page.get("QueueUrls", [])]
        eq(sorted(listed), [f"{ENDPOINT}/000000000000/{n}" for n in names], "queues listed over all pages")
    finally:
        for name in names:
            sqs.delete_queue(QueueUrl=f"{ENDPOINT}/000000000000/{name}")
    eq(sqs.get_queue_url(QueueName=MAIN_NAME)["QueueUrl"], state["main"], "GetQueueUrl")
    eq(sqs.get_queue_url(QueueName=DLQ_NAME)["QueueUrl"], state["dlq"], "GetQueueUrl of the DLQ")


NO_QUEUE = ("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue")


def step_unknown_queue():
    missing = f"{PREFIX}-no-such-queue"
    url = f"{ENDPOINT}/000000000000/{missing}"
    code, _ = expect_error(NO_QUEUE, 400, sqs.get_queue_url, QueueName=missing)
    # The modeled exception class matches it too (botocore maps the query-compatible code).
    try:
        sqs.get_queue_url(QueueName=missing)
    except sqs.exceptions.QueueDoesNotExist:
        pass
    expect_error(NO_QUEUE, 400, sqs.send_message, QueueUrl=url, MessageBody="x")
    expect_error(NO_QUEUE, 400, sqs.receive_message, QueueUrl=url, WaitTimeSeconds=1)
    expect_error(NO_QUEUE, 400, sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["All"])
    expect_error(NO_QUEUE, 400, sqs.purge_queue, QueueUrl=url)
    expect_error(NO_QUEUE, 400, sqs.delete_queue, QueueUrl=url)
    # A .fifo name without FifoQueue: refused, not silently made standard (FIFO queues: tests/sqs/fifo.py).
    expect_error("InvalidParameterValue", 400, sqs.create_queue, QueueName=f"{PREFIX}-orders.fifo")


def step_bad_credentials():
    wrong_secret = client(KEY_ID, SECRET[:-4] + ("AAAA" if not SECRET.endswith("AAAA") else "BBBB"))
    expect_error("SignatureDoesNotMatch", 403, wrong_secret.list_queues)
    expect_error("SignatureDoesNotMatch", 403, wrong_secret.send_message, QueueUrl=state["main"], MessageBody="forged")
    unknown = client("AKIAMOMUNKNOWNKEY000", SECRET)
    expect_error("InvalidClientTokenId", 403, unknown.list_queues)
    expect_error("InvalidClientTokenId", 403, unknown.get_queue_url, QueueName=MAIN_NAME)
    assert_none_arrived(state["main"], {"forged"}, "messages of rejected sends")


def tampering_client(before_sign=None, before_send=None):
    """A client whose SendMessage requests are changed before they are signed and/or after."""
    c = client()
    if before_sign:
        c.meta.events.register_first("before-sign.sqs.SendMessage", lambda request, **_: before_sign(request))
    if before_send:
        c.meta.events.register_first("before-send.sqs.SendMessage", lambda request, **_: before_send(request))
    return c


def sha256_header(request):
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(request.body).hexdigest()


def swap_body(request):
    request.body = request.body.replace(b"signed body", b"other body!")


def swap_body_keeping_hash(request):
    sha256_header(request)
    swap_body(request)


def step_tampered_body():
    main = state["main"]
    try:
        # A body changed after signing no longer matches the signature...
        c = tampering_client(before_send=swap_body)
        expect_error("SignatureDoesNotMatch", 403, c.send_message, QueueUrl=main, MessageBody="signed body")
        # ... also when an unsigned x-amz-content-sha256 header claims the hash of the signed body
        # (the payload hash a signature covers is the hash of the body that arrived) ...
        c = tampering_client(before_send=swap_body_keeping_hash)
        expect_error("SignatureDoesNotMatch", 403, c.send_message, QueueUrl=main, MessageBody="signed body")
        # ... or a signed one (S3's XAmzContentSHA256Mismatch is as good an answer).
        c = tampering_client(before_sign=sha256_header, before_send=swap_body)
        expect_error(("SignatureDoesNotMatch", "XAmzContentSHA256Mismatch"), (400, 403), c.send_message, QueueUrl=main, MessageBody="signed body")
        # ... or a signed UNSIGNED-PAYLOAD in its place (S3's alone; an SQS request signs its body).
        def unsigned_payload(request):
            request.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"

        c = tampering_client(before_sign=unsigned_payload, before_send=swap_body)
        expect_error(("SignatureDoesNotMatch", "XAmzContentSHA256Mismatch"), (400, 403), c.send_message, QueueUrl=main, MessageBody="signed body")
        assert_none_arrived(main, {"signed body", "other body!"}, "messages of tampered sends")
        # A client that signs a correct x-amz-content-sha256 (as some SDKs do) is served.
        c = tampering_client(before_sign=sha256_header)
        sent = c.send_message(QueueUrl=main, MessageBody="signed body")
        got = receive_all(main, 1)
        eq([m["MessageId"] for m in got], [sent["MessageId"]], "message sent with a signed x-amz-content-sha256")
        sqs.delete_message(QueueUrl=main, ReceiptHandle=got[0]["ReceiptHandle"])
    finally:
        # A wrongly accepted message must not spill into later steps.
        sqs.purge_queue(QueueUrl=main)


@contextlib.contextmanager
def clock_off_by(delta):
    """botocore signs with a clock `delta` away from the real one."""
    real = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: real() + delta
    try:
        yield
    finally:
        botocore.auth.get_current_datetime = real


def step_stale_date():
    check(hasattr(botocore.auth, "get_current_datetime"), "botocore.auth.get_current_datetime is gone: update clock_off_by")
    for minutes in (-20, 20):
        with clock_off_by(datetime.timedelta(minutes=minutes)):
            expect_error("RequestExpired", 400, sqs.list_queues)
            expect_error("RequestExpired", 400, sqs.send_message, QueueUrl=state["main"], MessageBody="stale")
    # Within SQS's 15 minutes a skewed clock is fine.
    with clock_off_by(datetime.timedelta(minutes=-5)):
        sqs.list_queues()
    assert_none_arrived(state["main"], {"stale"}, "messages of stale sends")


def step_access_rules():
    other = client(OTHER_KEY_ID, OTHER_SECRET)
    restricted_url = f"{ENDPOINT}/000000000000/{RESTRICTED}"
    # The owner uses the restricted queue as any other.
    eq(sqs.get_queue_url(QueueName=RESTRICTED)["QueueUrl"], restricted_url, "owner's GetQueueUrl of the restricted queue")
    sqs.send_message(QueueUrl=restricted_url, MessageBody="private")
    # Another user without grants may not see, send to, receive from or manage it.
    denied = ("AccessDenied", "AccessDeniedException")
    expect_error(denied, 403, other.send_message, QueueUrl=restricted_url, MessageBody="intruder")
    expect_error(denied, 403, other.receive_message, QueueUrl=restricted_url, WaitTimeSeconds=1)
    expect_error(denied, 403, other.get_queue_attributes, QueueUrl=restricted_url, AttributeNames=["All"])
    expect_error(denied, 403, other.purge_queue, QueueUrl=restricted_url)
    expect_error(denied, 403, other.delete_queue, QueueUrl=restricted_url)
    urls = other.list_queues().get("QueueUrls", [])
    check(restricted_url not in urls, f"the restricted queue is listed for a user without grants: {urls}")
    check(state["main"] in urls, f"an open queue is not listed for another user: {urls}")
    # On an open ("authenticated") queue another user may send and receive, but not manage.
    other.send_message(QueueUrl=state["main"], MessageBody="from other")
    got = receive_all(state["main"], 1)
    eq([m["Body"] for m in got], ["from other"], "owner receives what another user sent")
    sqs.delete_message(QueueUrl=state["main"], ReceiptHandle=got[0]["ReceiptHandle"])
    expect_error(denied, 403, other.set_queue_attributes, QueueUrl=state["main"], Attributes={"DelaySeconds": "3"})
    expect_error(denied, 403, other.delete_queue, QueueUrl=state["main"])
    # Still there, untouched.
    eq(queue_attrs(state["main"], ["DelaySeconds"])["DelaySeconds"], "0", "DelaySeconds after a refused change")
    got = receive_all(restricted_url, 1)
    eq([m["Body"] for m in got], ["private"], "the restricted queue's message")
    sqs.delete_message(QueueUrl=restricted_url, ReceiptHandle=got[0]["ReceiptHandle"])


def step_delete_queues():
    sqs.delete_queue(QueueUrl=state["main"])
    sqs.delete_queue(QueueUrl=state["dlq"])
    expect_error(NO_QUEUE, 400, sqs.get_queue_url, QueueName=MAIN_NAME)
    expect_error(NO_QUEUE, 400, sqs.send_message, QueueUrl=state["main"], MessageBody="too late")
    urls = sqs.list_queues(QueueNamePrefix=PREFIX).get("QueueUrls", [])
    eq(urls, [], "queues left after DeleteQueue")


STEPS = [
    step_create,
    step_empty_long_poll,
    step_send_batch_and_long_poll,
    step_change_visibility,
    step_delete,
    step_dead_letter,
    step_queue_attributes,
    step_current_fidelity,
    step_purge,
    step_list_and_url,
    step_unknown_queue,
    step_bad_credentials,
    step_tampered_body,
    step_stale_date,
    step_access_rules,
    step_delete_queues,
]


def main():
    import botocore

    print(f"boto3 {boto3.__version__}, botocore {botocore.__version__}, endpoint {ENDPOINT}", flush=True)
    failures = []
    for step in STEPS:
        name = step.__name__[len("step_"):]
        start = time.monotonic()
        try:
            step()
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the run goes on
            failures.append(name)
            print(f"FAIL {name} ({time.monotonic() - start:.2f} s): {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(file=sys.stdout)
            if name == "create":
                break  # every later step needs the queues
            continue
        print(f"ok   {name} ({time.monotonic() - start:.2f} s)", flush=True)
    if failures:
        print(f"workload failed: {', '.join(failures)}", flush=True)
        return 1
    print(f"workload passed: all {len(STEPS)} steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
