#!/usr/bin/env python3
"""The actions and attributes of issue 22 over SQS's query protocol (form parameters, XML answers):
boto3 1.28.0 / botocore 1.31.0, the last release speaking it, in the virtualenv .ci/run makes.

Run by tests/tests/sqs_fidelity.rs with MOM_SQS_ENDPOINT, MOM_SQS_REGION, MOM_SQS_KEY_ID and
MOM_SQS_SECRET set; exits non-zero on the first wrong answer.
"""

import json
import os
import sys
import time

import boto3
import botocore
from botocore.exceptions import ClientError

sqs = boto3.client(
    "sqs",
    endpoint_url=os.environ["MOM_SQS_ENDPOINT"],
    region_name=os.environ["MOM_SQS_REGION"],
    aws_access_key_id=os.environ["MOM_SQS_KEY_ID"],
    aws_secret_access_key=os.environ["MOM_SQS_SECRET"],
)


def eq(got, want, what):
    if got != want:
        print(f"FAIL: {what}: expected {want!r}, got {got!r}", file=sys.stderr)
        sys.exit(1)
    print(f"ok   {what}")


def code(call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def main():
    eq(botocore.__version__, "1.31.0", "botocore of the query protocol")
    dlq = sqs.create_queue(QueueName="qf-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ALL"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 1})
    main_q = sqs.create_queue(
        QueueName="qf-main",
        Attributes={"ReceiveMessageWaitTimeSeconds": "1", "RedrivePolicy": redrive, "KmsMasterKeyId": "alias/aws/sqs"},
        tags={"a": "1"},
    )["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=main_q, AttributeNames=["all"])["Attributes"]
    eq((attrs["ReceiveMessageWaitTimeSeconds"], attrs["KmsMasterKeyId"]), ("1", "alias/aws/sqs"), "attributes, asked as 'all'")
    eq(sqs.list_queue_tags(QueueUrl=main_q).get("Tags"), {"a": "1"}, "tags at creation")
    sqs.tag_queue(QueueUrl=main_q, Tags={"b": "2"})
    sqs.untag_queue(QueueUrl=main_q, TagKeys=["a"])
    eq(sqs.list_queue_tags(QueueUrl=main_q).get("Tags"), {"b": "2"}, "TagQueue and UntagQueue")
    eq(sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"], [main_q], "ListDeadLetterSourceQueues")
    empty = sqs.receive_message(QueueUrl=main_q)
    eq("Messages" in empty, False, "an empty receive has no Messages")
    sent = sqs.send_message(
        QueueUrl=main_q, MessageBody="x",
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-q"}},
    )
    eq((len(sent["MessageId"]), sent["MessageId"][14]), (36, "8"), "a UUID MessageId")
    got = sqs.receive_message(QueueUrl=main_q, VisibilityTimeout=0, AttributeNames=["ALL"])["Messages"][0]
    eq((got["Attributes"]["SenderId"], got["Attributes"]["AWSTraceHeader"]), ("owner", "Root=1-q"), "system attributes")
    sqs.receive_message(QueueUrl=main_q, VisibilityTimeout=0)
    deadline = time.monotonic() + 10
    while sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"] != "1":
        if time.monotonic() > deadline:
            eq("no dead letter", "a dead letter", "the dead letter")
        time.sleep(0.1)
    handle = sqs.start_message_move_task(SourceArn=arn)["TaskHandle"]
    deadline = time.monotonic() + 10
    while (task := sqs.list_message_move_tasks(SourceArn=arn)["Results"][0])["Status"] != "COMPLETED":
        if time.monotonic() > deadline:
            eq(task["Status"], "COMPLETED", "the move task")
        time.sleep(0.1)
    eq(task["ApproximateNumberOfMessagesMoved"], 1, "StartMessageMoveTask and ListMessageMoveTasks")
    eq(code(sqs.cancel_message_move_task, TaskHandle=handle), "AWS.SimpleQueueService.UnsupportedOperation", "cancelling a finished task")
    sqs.add_permission(QueueUrl=main_q, Label="p", AWSAccountIds=["111122223333"], Actions=["SendMessage"])
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=main_q, AttributeNames=["Policy"])["Attributes"]["Policy"])
    eq(policy["Statement"][0]["Sid"], "p", "AddPermission")
    sqs.remove_permission(QueueUrl=main_q, Label="p")
    eq(code(sqs.send_message, QueueUrl=main_q, MessageBody="bad \x01"), "InvalidMessageContents", "a body outside SQS's characters")
    eq(code(sqs.set_queue_attributes, QueueUrl=main_q, Attributes={"ReceiveMessageWaitTimeSeconds": "21"}), "InvalidAttributeValue", "a wait over 20 s")


if __name__ == "__main__":
    main()
