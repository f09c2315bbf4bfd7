#!/usr/bin/env python3
"""FIFO queues through mom's SQS-compatible endpoint, driven by the unmodified boto3 (issue 21).

Run by tests/tests/fifo.rs against a broker it started. From the environment: MOM_SQS_ENDPOINT,
MOM_SQS_REGION, MOM_SQS_KEY_ID, MOM_SQS_SECRET. Exits 0 when every step passed, 1 otherwise;
prints one line per step and the cause of a failure.
"""

import hashlib
import os
import sys
import traceback

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

sqs = boto3.client(
    "sqs",
    endpoint_url=os.environ["MOM_SQS_ENDPOINT"].rstrip("/"),
    region_name=os.environ.get("MOM_SQS_REGION", "us-east-1"),
    aws_access_key_id=os.environ["MOM_SQS_KEY_ID"],
    aws_secret_access_key=os.environ["MOM_SQS_SECRET"],
    # No retries: the script sees every answer.
    config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=40),
)


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def refused(code, call, **kwargs):
    """The call fails with SQS error `code`."""
    try:
        call(**kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        check(got == code, f"expected {code}, got {got}: {e}")
        return
    raise Failed(f"expected {code}, the call succeeded")


def receive(url, **kwargs):
    return sqs.receive_message(QueueUrl=url, AttributeNames=["All"], **kwargs).get("Messages", [])


def step_create():
    url = sqs.create_queue(
        QueueName="orders.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    check(url.endswith("/orders.fifo"), url)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    check(attrs.get("FifoQueue") == "true", attrs)
    check(attrs.get("ContentBasedDeduplication") == "true", attrs)
    check(attrs.get("DeduplicationScope") == "queue", attrs)
    check(attrs.get("FifoThroughputLimit") == "perQueue", attrs)
    high = sqs.create_queue(
        QueueName="high.fifo",
        Attributes={"FifoQueue": "true", "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"},
    )["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=high, AttributeNames=["DeduplicationScope", "FifoThroughputLimit"])
    check(attrs["Attributes"] == {"DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"}, attrs)
    plain = sqs.get_queue_attributes(
        QueueUrl=sqs.create_queue(QueueName="plain")["QueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    check("FifoQueue" not in plain, plain)


def step_refusals():
    refused("InvalidParameterValue", sqs.create_queue, QueueName="named.fifo")
    refused("InvalidParameterValue", sqs.create_queue, QueueName="unnamed", Attributes={"FifoQueue": "true"})
    refused("InvalidAttributeName", sqs.create_queue, QueueName="std", Attributes={"ContentBasedDeduplication": "true"})
    refused(
        "InvalidAttributeValue",
        sqs.create_queue,
        QueueName="bad.fifo",
        Attributes={"FifoQueue": "true", "DeduplicationScope": "everything"},
    )
    url = sqs.get_queue_url(QueueName="orders.fifo")["QueueUrl"]
    refused("MissingParameter", sqs.send_message, QueueUrl=url, MessageBody="x")
    refused("InvalidParameterValue", sqs.send_message, QueueUrl=url, MessageBody="x", MessageGroupId="g", DelaySeconds=5)
    refused("InvalidParameterValue", sqs.send_message, QueueUrl=url, MessageBody="x", MessageGroupId="tab\tbed")
    no_cbd = sqs.create_queue(QueueName="nocbd.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    refused("InvalidParameterValue", sqs.send_message, QueueUrl=no_cbd, MessageBody="x", MessageGroupId="g")
    # In a batch, each entry on its own.
    answer = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": "a", "MessageBody": "no group"}, {"Id": "b", "MessageBody": "fine", "MessageGroupId": "z"}],
    )
    check([f["Code"] for f in answer.get("Failed", [])] == ["MissingParameter"], answer)
    check([s["Id"] for s in answer["Successful"]] == ["b"] and answer["Successful"][0].get("SequenceNumber"), answer)
    sqs.purge_queue(QueueUrl=url)


def step_order_groups_dedup_attempts():
    url = sqs.get_queue_url(QueueName="orders.fifo")["QueueUrl"]
    a1 = sqs.send_message(QueueUrl=url, MessageBody="a1", MessageGroupId="A")
    a2 = sqs.send_message(QueueUrl=url, MessageBody="a2", MessageGroupId="A", MessageDeduplicationId="a2-id")
    check(int(a2["SequenceNumber"]) > int(a1["SequenceNumber"]), (a1, a2))
    batch = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "b1", "MessageGroupId": "B"}])
    check(len(batch["Successful"]) == 1 and batch["Successful"][0]["SequenceNumber"], batch)
    # Content-based dedup: the same body again is the same message.
    dup = sqs.send_message(QueueUrl=url, MessageBody="a1", MessageGroupId="A")
    check(dup["MessageId"] == a1["MessageId"], (dup, a1))

    first = receive(url, MaxNumberOfMessages=1, ReceiveRequestAttemptId="attempt-1")
    check([m["Body"] for m in first] == ["a1"], first)
    attrs = first[0]["Attributes"]
    check(attrs["MessageGroupId"] == "A", attrs)
    check(attrs["SequenceNumber"] == a1["SequenceNumber"], attrs)
    check(attrs["MessageDeduplicationId"] == hashlib.sha256(b"a1").hexdigest(), attrs)
    # A retried receive with the same attempt id gets the same message and receipt.
    again = receive(url, MaxNumberOfMessages=1, ReceiveRequestAttemptId="attempt-1")
    check([(m["MessageId"], m["ReceiptHandle"]) for m in again] == [(first[0]["MessageId"], first[0]["ReceiptHandle"])], again)
    # Group A is held: another receive gets B only.
    other = receive(url, MaxNumberOfMessages=10)
    check([m["Body"] for m in other] == ["b1"], other)
    check(receive(url, MaxNumberOfMessages=10) == [], "a held group delivered")
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])
    nxt = receive(url, MaxNumberOfMessages=10)
    check([m["Body"] for m in nxt] == ["a2"], nxt)
    check(nxt[0]["Attributes"]["MessageDeduplicationId"] == "a2-id", nxt)
    # Returned (visibility 0): delivered again before anything later of its group.
    sqs.send_message(QueueUrl=url, MessageBody="a3", MessageGroupId="A")
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=nxt[0]["ReceiptHandle"], VisibilityTimeout=0)
    back = receive(url, MaxNumberOfMessages=10)
    check([m["Body"] for m in back] == ["a2", "a3"], back)
    check(back[0]["Attributes"]["ApproximateReceiveCount"] == "2", back)
    sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(back + other)],
    )
    check(receive(url, MaxNumberOfMessages=10) == [], "left over")


def step_fair_queue_groups():
    url = sqs.get_queue_url(QueueName="plain")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="t1", MessageGroupId="tenant-1")
    got = receive(url, MaxNumberOfMessages=1)
    check(got and got[0]["Attributes"].get("MessageGroupId") == "tenant-1", got)
    check("SequenceNumber" not in got[0]["Attributes"], got)


def main():
    failed = False
    for step in [step_create, step_refusals, step_order_groups_dedup_attempts, step_fair_queue_groups]:
        try:
            step()
            print(f"ok   {step.__name__}")
        except Exception as e:
            failed = True
            print(f"FAIL {step.__name__}: {e}")
            traceback.print_exc()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
