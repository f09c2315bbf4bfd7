#!/usr/bin/env python3
"""A Celery worker (celery[sqs] 5.x, kombu's SQS transport, from PyPI) on the broker's SQS endpoint.

Two short worker sessions in this process (tasks record what happened in memory, so no result
backend is needed):

1. Queues made by kombu with `sqs-creation-attributes` (ReceiveMessageWaitTimeSeconds among
   them) and `fetch_message_attributes=["All"]` (kombu asks for `MessageSystemAttributeNames`
   `["ALL"]`): a task runs end to end, and a task retried by Celery with exponential backoff
   succeeds on its third attempt.
2. Predefined queues: kombu's backoff policy (on reject it sets the visibility timeout from the
   message's `ApproximateReceiveCount`, the attribute a worker died without, KeyError
   'Attributes'), and a rejected task (Reject(requeue=False)) on a queue with a RedrivePolicy:
   kombu leaves it, and it reaches the dead-letter queue.

Run by tests/tests/sqs_fidelity.rs with MOM_SQS_ENDPOINT, MOM_SQS_REGION, MOM_SQS_KEY_ID and
MOM_SQS_SECRET set; exits non-zero on the first wrong answer.
"""

import json
import os
import sys
import threading
import time
import urllib.parse

import boto3
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.exceptions import Reject

ENDPOINT = os.environ["MOM_SQS_ENDPOINT"]
REGION = os.environ["MOM_SQS_REGION"]
KEY_ID = os.environ["MOM_SQS_KEY_ID"]
SECRET = os.environ["MOM_SQS_SECRET"]
STARTED = time.monotonic()

sqs = boto3.client(
    "sqs", endpoint_url=ENDPOINT, region_name=REGION, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET
)
parsed = urllib.parse.urlparse(ENDPOINT)
BROKER_URL = f"sqs://{urllib.parse.quote(KEY_ID, safe='')}:{urllib.parse.quote(SECRET, safe='')}@{parsed.hostname}:{parsed.port}"

events = []
lock = threading.Lock()


def record(*what):
    with lock:
        events.append((time.monotonic(), *what))


def seen(kind):
    with lock:
        return [e for e in events if e[1] == kind]


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def wait_for(what, probe, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.05)
    fail(f"timed out waiting for {what}; events: {events}")


def app_with(name, **transport):
    app = Celery(name, broker=BROKER_URL)
    app.conf.update(
        broker_transport_options={"is_secure": False, "region": REGION, "wait_time_seconds": 1, **transport},
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=False,
        worker_hijack_root_logger=False,
    )
    return app


def session_created_queues():
    """Queues made by kombu with sqs-creation-attributes; a task, and Celery's retry with backoff."""
    app = app_with(
        "fidelity-created",
        queue_name_prefix="celery-fid-",
        fetch_message_attributes=["All"],
        **{"sqs-creation-attributes": {"ReceiveMessageWaitTimeSeconds": "1", "MessageRetentionPeriod": "3600"}},
    )

    @app.task(name="fid.add")
    def add(x, y):
        record("add", x + y)
        return x + y

    @app.task(name="fid.flaky", bind=True, autoretry_for=(ValueError,), retry_backoff=1, retry_jitter=False, max_retries=3)
    def flaky(self):
        record("flaky", self.request.retries)
        if self.request.retries < 2:
            raise ValueError("not yet")
        return "done"

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        add.delay(2, 3)
        flaky.delay()
        wait_for("the add task", lambda: seen("add"))
        eq([e[2] for e in seen("add")], [5], "add's result")
        attempts = wait_for("three attempts of the flaky task", lambda: len(seen("flaky")) >= 3 and seen("flaky"))
        eq([e[2] for e in attempts], [0, 1, 2], "the flaky task's retries")
        gaps = [b[0] - a[0] for a, b in zip(attempts, attempts[1:])]
        if not (gaps[0] >= 0.9 and gaps[1] >= 1.9):
            fail(f"retries came after {gaps} s; the backoff is 1 s, then 2 s")
        print(f"ok   Celery retried with backoff: attempts {[e[2] for e in attempts]}, gaps {[round(g, 2) for g in gaps]} s")
    made = sqs.get_queue_url(QueueName="celery-fid-celery")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=made, AttributeNames=["All"])["Attributes"]
    eq(attrs["ReceiveMessageWaitTimeSeconds"], "1", "ReceiveMessageWaitTimeSeconds of kombu's queue")
    eq(attrs["MessageRetentionPeriod"], "3600", "MessageRetentionPeriod of kombu's queue")
    print("ok   kombu made its queue with sqs-creation-attributes")


def session_predefined_queues():
    """kombu's backoff policy on ApproximateReceiveCount, and a rejected task reaching the DLQ."""
    dlq = sqs.create_queue(QueueName="celery-fid-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})
    rejects = sqs.create_queue(QueueName="celery-fid-rejects", Attributes={"VisibilityTimeout": "1", "RedrivePolicy": redrive})["QueueUrl"]
    backoff = sqs.create_queue(QueueName="celery-fid-backoff", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    keys = {"access_key_id": KEY_ID, "secret_access_key": SECRET}
    app = app_with(
        "fidelity-predefined",
        fetch_message_attributes=["All"],
        predefined_queues={
            "rejects": {"url": rejects, **keys},
            "backoff": {"url": backoff, "backoff_policy": {1: 1, 2: 1}, "backoff_tasks": ["fid.backoff"], **keys},
        },
    )
    app.conf.task_default_queue = "backoff"
    app.conf.task_routes = {"fid.reject": {"queue": "rejects"}}

    @app.task(name="fid.backoff", bind=True)
    def backoff_task(self):
        record("backoff")
        if len(seen("backoff")) < 3:
            raise Reject("again later", requeue=False)
        return "done"

    @app.task(name="fid.reject")
    def reject_task():
        record("reject")
        raise Reject("never", requeue=False)

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10, queues=["backoff", "rejects"]):
        backoff_task.delay()
        reject_task.delay()
        attempts = wait_for("three attempts of the backoff task", lambda: len(seen("backoff")) >= 3 and seen("backoff"))
        gaps = [round(b[0] - a[0], 2) for a, b in zip(attempts, attempts[1:])]
        if not all(g >= 0.9 for g in gaps):
            fail(f"kombu's backoff policy made the message visible again after {gaps} s, not 1 s")
        print(f"ok   kombu's backoff policy (ApproximateReceiveCount): attempts {gaps} s apart")

        def dead():
            got = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=1, WaitTimeSeconds=1, MessageSystemAttributeNames=["ALL"])
            return got.get("Messages")

        letters = wait_for("the rejected task in the dead-letter queue", dead)
        body = json.loads(__import__("base64").b64decode(letters[0]["Body"]))
        eq(body["headers"]["task"], "fid.reject", "the dead letter's task")
        eq(letters[0]["Attributes"]["DeadLetterQueueSourceArn"].rsplit(":", 1)[1], "celery-fid-rejects", "DeadLetterQueueSourceArn")
        eq(len(seen("reject")), 1, "runs of the rejected task")
        print("ok   the rejected task reached the dead-letter queue through RedrivePolicy")


def eq(got, want, what):
    if got != want:
        fail(f"{what}: expected {want!r}, got {got!r}")


def main():
    session_created_queues()
    session_predefined_queues()
    print(f"the Celery worker sessions took {time.monotonic() - STARTED:.1f} s")


if __name__ == "__main__":
    main()
