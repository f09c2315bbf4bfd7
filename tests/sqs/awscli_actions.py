#!/usr/bin/env python3
"""The AWS CLI (awscli 1.x from PyPI) through every SQS action the broker serves.

Each step is `aws sqs <command> ...` as a user types it. The CLI's own driver
(`awscli.clidriver`, what the `aws` command runs) is called in this process so that forty
commands cost one interpreter start and one load of the CLI's models; one real `aws` process runs too. Run by
tests/tests/sqs_fidelity.rs with MOM_SQS_ENDPOINT, MOM_SQS_REGION, MOM_SQS_KEY_ID and
MOM_SQS_SECRET set; exits non-zero on the first wrong answer.
"""

import contextlib
import io
import json
import os
import subprocess
import sys
import time

from awscli.clidriver import create_clidriver

ENDPOINT = os.environ["MOM_SQS_ENDPOINT"]
REGION = os.environ["MOM_SQS_REGION"]
os.environ["AWS_ACCESS_KEY_ID"] = os.environ["MOM_SQS_KEY_ID"]
os.environ["AWS_SECRET_ACCESS_KEY"] = os.environ["MOM_SQS_SECRET"]
os.environ["AWS_DEFAULT_REGION"] = REGION
os.environ.pop("AWS_SESSION_TOKEN", None)
ACCOUNT = "000000000000"
STARTED = time.monotonic()
# One driver for every command, as one `aws` process would build it: its models load once.
DRIVER = create_clidriver()


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def aws(*args, expect_error=None):
    """`aws sqs ARGS --output json` through the CLI's driver; the parsed answer ({} when empty)."""
    argv = ["sqs", *args, "--endpoint-url", ENDPOINT, "--region", REGION, "--output", "json"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = DRIVER.main(argv)
    shown = "aws " + " ".join(argv[:-6])
    if expect_error:
        if rc == 0 or expect_error not in err.getvalue():
            fail(f"{shown}: expected {expect_error}, got rc {rc}: {out.getvalue()} {err.getvalue()}")
        print(f"ok   {shown} -> {expect_error}")
        return None
    if rc != 0:
        fail(f"{shown}: rc {rc}: {err.getvalue()}")
    print(f"ok   {shown}")
    text = out.getvalue().strip()
    return json.loads(text) if text else {}


def eq(got, want, what):
    if got != want:
        fail(f"{what}: expected {want!r}, got {got!r}")


def arn(name):
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def url(name):
    return f"{ENDPOINT}/{ACCOUNT}/{name}"


def main():
    # The real `aws` command, once.
    # `python -m awscli` is the `aws` script's entry point, wherever pip put the script.
    aws_cmd = [sys.executable, "-m", "awscli"]
    version = subprocess.run([*aws_cmd, "--version"], capture_output=True, text=True, check=True)
    print(f"ok   {(version.stdout or version.stderr).strip()}")
    listed = subprocess.run(
        [*aws_cmd, "sqs", "list-queues", "--endpoint-url", ENDPOINT, "--region", REGION, "--output", "json"],
        capture_output=True, text=True, env=os.environ,
    )
    if listed.returncode != 0:
        fail(f"aws sqs list-queues: {listed.stderr}")
    print("ok   aws sqs list-queues (process)")

    dlq = aws("create-queue", "--queue-name", "cli-dlq")["QueueUrl"]
    eq(dlq, url("cli-dlq"), "create-queue URL")
    redrive = json.dumps({"deadLetterTargetArn": arn("cli-dlq"), "maxReceiveCount": "1"})
    attributes = json.dumps({"VisibilityTimeout": "20", "ReceiveMessageWaitTimeSeconds": "1", "RedrivePolicy": redrive})
    main_q = aws("create-queue", "--queue-name", "cli-main", "--attributes", attributes, "--tags", "team=cli,env=test")["QueueUrl"]
    eq(aws("get-queue-url", "--queue-name", "cli-main")["QueueUrl"], main_q, "get-queue-url")
    urls = aws("list-queues", "--queue-name-prefix", "cli-")["QueueUrls"]
    eq(sorted(urls), [dlq, main_q], "list-queues")
    got = aws("get-queue-attributes", "--queue-url", main_q, "--attribute-names", "All")["Attributes"]
    eq(got["VisibilityTimeout"], "20", "VisibilityTimeout")
    eq(got["ReceiveMessageWaitTimeSeconds"], "1", "ReceiveMessageWaitTimeSeconds")
    aws("set-queue-attributes", "--queue-url", main_q, "--attributes", "DelaySeconds=0,KmsMasterKeyId=alias/aws/sqs")
    got = aws("get-queue-attributes", "--queue-url", main_q, "--attribute-names", "KmsMasterKeyId", "DelaySeconds")["Attributes"]
    eq(got, {"KmsMasterKeyId": "alias/aws/sqs", "DelaySeconds": "0"}, "attributes by name")

    # Tags.
    eq(aws("list-queue-tags", "--queue-url", main_q)["Tags"], {"team": "cli", "env": "test"}, "tags at creation")
    aws("tag-queue", "--queue-url", main_q, "--tags", "tier=1")
    aws("untag-queue", "--queue-url", main_q, "--tag-keys", "env")
    eq(aws("list-queue-tags", "--queue-url", main_q)["Tags"], {"team": "cli", "tier": "1"}, "tags")

    # Messages.
    sent = aws(
        "send-message", "--queue-url", main_q, "--message-body", "from the cli",
        "--message-attributes", json.dumps({"kind": {"DataType": "String", "StringValue": "cli"}}),
        "--message-system-attributes", json.dumps({"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-abc"}}),
    )
    if len(sent["MessageId"]) != 36:
        fail(f"MessageId {sent['MessageId']!r} is not a UUID")
    batch = json.dumps([{"Id": f"b{i}", "MessageBody": f"batch {i}"} for i in range(3)])
    out = aws("send-message-batch", "--queue-url", main_q, "--entries", batch)
    eq(len(out.get("Successful", [])), 3, "send-message-batch successes")
    got = aws(
        "receive-message", "--queue-url", main_q, "--max-number-of-messages", "10",
        "--message-attribute-names", "ALL", "--message-system-attribute-names", "ALL",
        "--wait-time-seconds", "1",
    )["Messages"]
    if len(got) < 4:
        got += aws("receive-message", "--queue-url", main_q, "--max-number-of-messages", "10", "--message-system-attribute-names", "All")["Messages"]
    eq(sorted(m["Body"] for m in got), ["batch 0", "batch 1", "batch 2", "from the cli"], "received bodies")
    first = next(m for m in got if m["Body"] == "from the cli")
    eq(first["Attributes"]["SenderId"], "owner", "SenderId")
    eq(first["Attributes"]["AWSTraceHeader"], "Root=1-abc", "AWSTraceHeader")
    eq(first["MessageAttributes"]["kind"]["StringValue"], "cli", "message attribute")
    others = [m for m in got if m is not first]
    aws("change-message-visibility", "--queue-url", main_q, "--receipt-handle", others[0]["ReceiptHandle"], "--visibility-timeout", "30")
    entries = json.dumps([{"Id": f"v{i}", "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 30} for i, m in enumerate(others)])
    eq(len(aws("change-message-visibility-batch", "--queue-url", main_q, "--entries", entries)["Successful"]), 3, "visibility batch")
    aws("delete-message", "--queue-url", main_q, "--receipt-handle", first["ReceiptHandle"])
    entries = json.dumps([{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(others)])
    eq(len(aws("delete-message-batch", "--queue-url", main_q, "--entries", entries)["Successful"]), 3, "delete batch")
    # An empty receive (the queue's ReceiveMessageWaitTimeSeconds, 1 s): no Messages at all.
    eq(aws("receive-message", "--queue-url", main_q), {}, "an empty receive")

    # Dead letters, their sources and a move task back.
    aws("send-message", "--queue-url", main_q, "--message-body", "doomed")
    for _ in range(2):
        aws("receive-message", "--queue-url", main_q, "--visibility-timeout", "0", "--wait-time-seconds", "0")
    eq(aws("list-dead-letter-source-queues", "--queue-url", dlq)["queueUrls"], [main_q], "dead-letter sources")
    deadline = time.monotonic() + 10
    while aws("get-queue-attributes", "--queue-url", dlq, "--attribute-names", "ApproximateNumberOfMessages")["Attributes"]["ApproximateNumberOfMessages"] != "1":
        if time.monotonic() > deadline:
            fail("the dead letter never reached the DLQ")
        time.sleep(0.2)
    handle = aws("start-message-move-task", "--source-arn", arn("cli-dlq"))["TaskHandle"]
    deadline = time.monotonic() + 10
    while True:
        task = aws("list-message-move-tasks", "--source-arn", arn("cli-dlq"))["Results"][0]
        if task["Status"] == "COMPLETED":
            break
        if time.monotonic() > deadline:
            fail(f"the move task did not complete: {task}")
        time.sleep(0.2)
    eq(task["ApproximateNumberOfMessagesMoved"], 1, "messages moved")
    aws("cancel-message-move-task", "--task-handle", handle, expect_error="UnsupportedOperation")
    # A task at one message a second, cancelled while it runs.
    batch = json.dumps([{"Id": f"m{i}", "MessageBody": f"to move {i}"} for i in range(3)])
    aws("send-message-batch", "--queue-url", dlq, "--entries", batch)
    handle = aws("start-message-move-task", "--source-arn", arn("cli-dlq"), "--destination-arn", arn("cli-main"), "--max-number-of-messages-per-second", "1")["TaskHandle"]
    moved = aws("cancel-message-move-task", "--task-handle", handle)["ApproximateNumberOfMessagesMoved"]
    if not 0 <= moved <= 3:
        fail(f"ApproximateNumberOfMessagesMoved {moved} of a cancelled task")
    status = aws("list-message-move-tasks", "--source-arn", arn("cli-dlq"), "--max-results", "10")["Results"][0]["Status"]
    if status not in ("CANCELLING", "CANCELLED"):
        fail(f"a cancelled task is {status}")
    aws("purge-queue", "--queue-url", dlq)
    aws("purge-queue", "--queue-url", main_q)

    # Permissions (kept in Policy).
    aws("add-permission", "--queue-url", main_q, "--label", "partner", "--aws-account-ids", "111122223333", "--actions", "SendMessage")
    policy = json.loads(aws("get-queue-attributes", "--queue-url", main_q, "--attribute-names", "Policy")["Attributes"]["Policy"])
    eq([s["Sid"] for s in policy["Statement"]], ["partner"], "Policy statements")
    aws("remove-permission", "--queue-url", main_q, "--label", "partner")

    # Errors, as the CLI prints them.
    aws("get-queue-url", "--queue-name", "cli-missing", expect_error="AWS.SimpleQueueService.NonExistentQueue")
    aws("send-message", "--queue-url", main_q, "--message-body", "x", "--delay-seconds", "901", expect_error="InvalidParameterValue")
    aws("set-queue-attributes", "--queue-url", main_q, "--attributes", "NoSuch=1", expect_error="InvalidAttributeName")

    for q in (main_q, dlq):
        aws("delete-queue", "--queue-url", q)
    eq(aws("list-queues", "--queue-name-prefix", "cli-").get("QueueUrls", []), [], "queues after delete-queue")
    print(f"the AWS CLI ran every action in {time.monotonic() - STARTED:.1f} s")


if __name__ == "__main__":
    main()
