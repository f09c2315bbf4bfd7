#!/usr/bin/env python3
"""A Celery worker (celery[sqs] 5.x, kombu's SQS transport) on a FIFO queue of mom (issue 21).

kombu makes `celery-fifo-tasks.fifo` itself (FifoQueue true), sends each task with a
MessageGroupId (the task's `MessageGroupId` property, else "default") and a random
MessageDeduplicationId; a worker runs them. Checks: every task runs once, and each group's tasks
run in the order they were sent. Environment as tests/sqs/fifo.py; exits non-zero on the first
wrong answer.
"""

import os
import sys
import threading
import time
import urllib.parse

import boto3
from celery import Celery
from celery.contrib.testing.worker import start_worker

ENDPOINT = os.environ["MOM_SQS_ENDPOINT"]
REGION = os.environ["MOM_SQS_REGION"]
KEY_ID = os.environ["MOM_SQS_KEY_ID"]
SECRET = os.environ["MOM_SQS_SECRET"]
parsed = urllib.parse.urlparse(ENDPOINT)
BROKER_URL = f"sqs://{urllib.parse.quote(KEY_ID, safe='')}:{urllib.parse.quote(SECRET, safe='')}@{parsed.hostname}:{parsed.port}"
QUEUE = "tasks.fifo"

ran = []
lock = threading.Lock()


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


app = Celery("fifo", broker=BROKER_URL)
app.conf.update(
    broker_transport_options={"is_secure": False, "region": REGION, "wait_time_seconds": 1, "queue_name_prefix": "celery-fifo-"},
    task_default_queue=QUEUE,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=False,
    worker_hijack_root_logger=False,
)


@app.task(name="fifo.step")
def step(group, i):
    with lock:
        ran.append((group, i))


with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
    for i in range(6):
        step.apply_async(("default", i))
        step.apply_async(("g2", i), MessageGroupId="g2")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lock:
            if len(ran) >= 12:
                break
        time.sleep(0.05)
    with lock:
        got = list(ran)

if len(got) != 12:
    fail(f"ran {len(got)} of 12 tasks: {got}")
for g in ("default", "g2"):
    order = [i for (h, i) in got if h == g]
    if order != list(range(6)):
        fail(f"group {g} ran in the order {order}")
sqs = boto3.client("sqs", endpoint_url=ENDPOINT, region_name=REGION, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
url = sqs.get_queue_url(QueueName="celery-fifo-" + QUEUE)["QueueUrl"]
attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["FifoQueue"])["Attributes"]
if attrs.get("FifoQueue") != "true":
    fail(f"kombu's queue is not FIFO: {attrs}")
print(f"ok   12 tasks in 2 groups ran once each, in order per group, on {url}")
