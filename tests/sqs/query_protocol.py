#!/usr/bin/env python3
"""Every SQS action through the query (XML) protocol, driven by boto3 1.28.0 / botocore 1.31.0, the
last releases that speak it (botocore >= 1.31.81 speaks JSON). Run by tests/tests/sqs.rs with the
Python of the virtualenv .ci/run makes (~/.cache/mom-venv-boto3-128), with the environment
workload.py documents; its checks (check, eq, expect_error, the MD5 of attributes, receive, ...)
are workload.py's, imported.

Besides boto3, a few requests are made by hand and signed with botocore's SigV4: a GET with the
parameters in the query string, and a POST to a queue's URL with no QueueUrl parameter, the two
forms boto3 never sends but other SDKs and curl do.
"""

import os
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import boto3
import botocore
import botocore.auth
import botocore.awsrequest
import botocore.credentials

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("MOM_SQS_PREFIX", "qp")

import query_model  # noqa: E402
import workload as w  # noqa: E402

PREFIX = os.environ["MOM_SQS_PREFIX"]
NS = {"sqs": "http://queue.amazonaws.com/doc/2012-11-05/"}
sqs = w.sqs
state = {}

# A body with every character XML must escape, a carriage return XML parsers would turn into a
# line feed if it were not escaped, and characters beyond ASCII.
TRICKY_BODY = "<order id=\"1\" note='a&b'>\r\n\t]]> ✓ 🚀</order>"


def signed(method, url, params=None, body=None):
    """A request signed like botocore signs one: (status, content type, parsed XML root)."""
    if params:
        url = url + "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    headers = {}
    if body is not None:
        body = urllib.parse.urlencode(body).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
    req = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=headers)
    creds = botocore.credentials.Credentials(w.KEY_ID, w.SECRET)
    botocore.auth.SigV4Auth(creds, "sqs", w.REGION).add_auth(req)
    prepared = req.prepare()
    raw = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method=method)
    try:
        with urllib.request.urlopen(raw, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), ET.fromstring(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), ET.fromstring(e.read())


def text(root, path):
    node = root.find(path, NS)
    if node is None:
        raise w.Failed(f"no {path} in {ET.tostring(root).decode()}")
    return node.text or ""


# --- steps ------------------------------------------------------------------------------------


def step_protocol():
    w.eq(botocore.__version__, "1.31.0", "botocore version (the query protocol's)")
    w.eq(sqs.meta.service_model.protocol, "query", "protocol of boto3's SQS client")
    # The broker's model (broker/src/sqs/query-model.json) is this botocore's.
    w.eq(query_model.render(), open(query_model.OUT).read(), "query-model.json against botocore 1.31.0's model")


def step_create():
    dlq = sqs.create_queue(QueueName=f"{PREFIX}-dlq")["QueueUrl"]
    w.eq(dlq, f"{w.ENDPOINT}/000000000000/{PREFIX}-dlq", "DLQ URL")
    dlq_arn = w.queue_attrs(dlq, ["QueueArn"])["QueueArn"]
    policy = '{"deadLetterTargetArn":"%s","maxReceiveCount":"3"}' % dlq_arn
    attrs = {"VisibilityTimeout": "30", "DelaySeconds": "0", "MaximumMessageSize": "2048", "RedrivePolicy": policy}
    main = sqs.create_queue(QueueName=f"{PREFIX}-main", Attributes=attrs)["QueueUrl"]
    w.eq(main, f"{w.ENDPOINT}/000000000000/{PREFIX}-main", "queue URL")
    state.update(main=main, dlq=dlq, dlq_arn=dlq_arn)


def step_get_url_and_list():
    w.eq(sqs.get_queue_url(QueueName=f"{PREFIX}-main")["QueueUrl"], state["main"], "GetQueueUrl")
    urls = sqs.list_queues(QueueNamePrefix=PREFIX)["QueueUrls"]
    w.eq(sorted(urls), sorted([state["main"], state["dlq"]]), "ListQueues by prefix")
    w.eq(sqs.list_queues(QueueNamePrefix=f"{PREFIX}-none").get("QueueUrls", []), [], "ListQueues of no queue")
    page = sqs.list_queues(QueueNamePrefix=PREFIX, MaxResults=1)
    w.eq(len(page["QueueUrls"]), 1, "a page of one")
    w.check(page.get("NextToken"), f"NextToken of a partial page: {page}")


def step_attributes():
    main = state["main"]
    got = w.queue_attrs(main)
    for k, v in {"VisibilityTimeout": "30", "DelaySeconds": "0", "MaximumMessageSize": "2048"}.items():
        w.eq(got.get(k), v, k)
    w.eq(got["QueueArn"], f"arn:aws:sqs:{w.REGION}:000000000000:{PREFIX}-main", "QueueArn")
    w.check(state["dlq_arn"] in got.get("RedrivePolicy", ""), f"RedrivePolicy {got.get('RedrivePolicy')!r}")
    sqs.set_queue_attributes(QueueUrl=main, Attributes={"VisibilityTimeout": "45", "DelaySeconds": "0"})
    got = w.queue_attrs(main, ["VisibilityTimeout", "ApproximateNumberOfMessages"])
    w.eq(got, {"VisibilityTimeout": "45", "ApproximateNumberOfMessages": "0"}, "two attributes by name")
    w.expect_error("InvalidAttributeName", 400, sqs.set_queue_attributes, QueueUrl=main, Attributes={"NoSuch": "1"})


def step_send_and_receive():
    main = state["main"]
    attrs = dict(w.ATTRS)
    sent = sqs.send_message(QueueUrl=main, MessageBody=TRICKY_BODY, MessageAttributes=attrs)
    w.eq(sent["MD5OfMessageBody"], w.md5_hex(TRICKY_BODY.encode()), "MD5OfMessageBody at send")
    w.eq(sent.get("MD5OfMessageAttributes"), w.md5_of_attributes(attrs), "MD5OfMessageAttributes at send")
    entries = [{"Id": f"e{i}", "MessageBody": f"batch {i} & <more>"} for i in range(3)]
    entries[0]["MessageAttributes"] = {"n": {"DataType": "Number", "StringValue": "1"}}
    entries[1]["DelaySeconds"] = 0
    entries.append({"Id": "bad", "MessageBody": ""})
    batch = sqs.send_message_batch(QueueUrl=main, Entries=entries)
    w.eq(sorted(s["Id"] for s in batch["Successful"]), ["e0", "e1", "e2"], "batch: successful ids")
    w.eq([(f["Id"], f["SenderFault"]) for f in batch.get("Failed", [])], [("bad", True)], "batch: failed entries")
    for s in batch["Successful"]:
        w.eq(s["MD5OfMessageBody"], w.md5_hex(f"batch {s['Id'][1:]} & <more>".encode()), f"MD5 of batch entry {s['Id']}")
    got = w.receive_all(main, 4)
    bodies = sorted(m["Body"] for m in got)
    w.eq(bodies, sorted([TRICKY_BODY] + [f"batch {i} & <more>" for i in range(3)]), "bodies received")
    for m in got:
        w.check_digests(m, attrs if m["Body"] == TRICKY_BODY else None)
        w.eq(m["Attributes"]["ApproximateReceiveCount"], "1", "ApproximateReceiveCount")
        w.check(m["Attributes"]["SentTimestamp"].isdigit(), f"SentTimestamp of {m}")
        if m["Body"] == TRICKY_BODY:
            w.eq(m["MessageId"], sent["MessageId"], "MessageId at receive")
    state["received"] = got


def step_change_visibility():
    main = state["main"]
    got = {m["Body"]: m for m in state["received"]}
    first = got[TRICKY_BODY]
    sqs.change_message_visibility(QueueUrl=main, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    again = w.receive_all(main, 1, MessageAttributeNames=["kind", "a*"], AttributeNames=["ApproximateReceiveCount"])
    w.eq([m["Body"] for m in again], [TRICKY_BODY], "the message made visible again")
    w.eq(again[0]["Attributes"], {"ApproximateReceiveCount": "2"}, "only the system attribute asked for")
    w.eq(sorted(again[0].get("MessageAttributes", {})), ["kind"], "only the message attribute asked for")
    got[TRICKY_BODY] = again[0]
    handles = [got[f"batch {i} & <more>"]["ReceiptHandle"] for i in range(2)]
    answer = sqs.change_message_visibility_batch(
        QueueUrl=main,
        Entries=[{"Id": f"v{i}", "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(handles)],
    )
    w.eq(sorted(s["Id"] for s in answer["Successful"]), ["v0", "v1"], "ChangeMessageVisibilityBatch")
    back = w.receive_all(main, 2)
    w.eq(sorted(m["Body"] for m in back), [f"batch {i} & <more>" for i in range(2)], "the batch made visible again")
    for m in back:
        got[m["Body"]] = m
    state["received"] = list(got.values())


def step_delete():
    main = state["main"]
    first, *rest = state["received"]
    sqs.delete_message(QueueUrl=main, ReceiptHandle=first["ReceiptHandle"])
    entries = [{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(rest)]
    entries.append({"Id": "bogus", "ReceiptHandle": "not-a-receipt"})
    answer = sqs.delete_message_batch(QueueUrl=main, Entries=entries)
    w.eq(sorted(s["Id"] for s in answer["Successful"]), [f"d{i}" for i in range(len(rest))], "DeleteMessageBatch")
    w.eq([f["Id"] for f in answer["Failed"]], ["bogus"], "a receipt never issued fails alone")
    w.eq(w.queue_attrs(main, ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]),
         {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}, "queue emptied")


def step_purge():
    main = state["main"]
    for i in range(2):
        sqs.send_message(QueueUrl=main, MessageBody=f"purge me {i}")
    w.eq(w.queue_attrs(main, ["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"], "2", "before purge")
    sqs.purge_queue(QueueUrl=main)
    w.eq(w.queue_attrs(main, ["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"], "0", "after purge")


def step_tags():
    main = state["main"]
    sqs.tag_queue(QueueUrl=main, Tags={"team": "infra", "cost": "a&b"})
    w.eq(sqs.list_queue_tags(QueueUrl=main).get("Tags"), {"team": "infra", "cost": "a&b"}, "ListQueueTags")
    sqs.untag_queue(QueueUrl=main, TagKeys=["cost"])
    w.eq(sqs.list_queue_tags(QueueUrl=main).get("Tags"), {"team": "infra"}, "tags after UntagQueue")
    tagged = sqs.create_queue(QueueName=f"{PREFIX}-tagged", tags={"env": "ci"})["QueueUrl"]
    w.eq(sqs.list_queue_tags(QueueUrl=tagged).get("Tags"), {"env": "ci"}, "tags given to CreateQueue")
    sqs.delete_queue(QueueUrl=tagged)


def step_dead_letter_sources_and_moves():
    answer = sqs.list_dead_letter_source_queues(QueueUrl=state["dlq"])
    w.eq(answer["queueUrls"], [state["main"]], "ListDeadLetterSourceQueues")
    task = sqs.start_message_move_task(SourceArn=state["dlq_arn"])
    w.check(task.get("TaskHandle"), f"StartMessageMoveTask: {task}")
    tasks = sqs.list_message_move_tasks(SourceArn=state["dlq_arn"]).get("Results", [])
    w.check(tasks and tasks[0].get("Status") and tasks[0].get("SourceArn") == state["dlq_arn"],
            f"ListMessageMoveTasks: {tasks}")
    # The task (of an empty DLQ) may have finished already: then cancelling it is refused.
    try:
        moved = sqs.cancel_message_move_task(TaskHandle=task["TaskHandle"])["ApproximateNumberOfMessagesMoved"]
        w.check(isinstance(moved, int), f"ApproximateNumberOfMessagesMoved {moved!r}: a number")
    except sqs.exceptions.UnsupportedOperation:
        pass
    w.expect_error("ResourceNotFoundException", (400, 404), sqs.cancel_message_move_task, TaskHandle="bm90LWEtdGFzaw==")


def step_permissions():
    main = state["main"]
    sqs.add_permission(QueueUrl=main, Label="l1", AWSAccountIds=["000000000000"], Actions=["SendMessage"])
    w.check("l1" in w.queue_attrs(main, ["Policy"]).get("Policy", ""), "AddPermission's statement in Policy")
    sqs.remove_permission(QueueUrl=main, Label="l1")


def step_errors():
    missing = f"{w.ENDPOINT}/000000000000/{PREFIX}-missing"
    code, _ = w.expect_error("AWS.SimpleQueueService.NonExistentQueue", 400, sqs.get_queue_url, QueueName=f"{PREFIX}-missing")
    try:
        sqs.send_message(QueueUrl=missing, MessageBody="x")
        raise w.Failed("SendMessage to a missing queue succeeded")
    except sqs.exceptions.QueueDoesNotExist:
        pass  # boto3 1.28's modelled exception: matched on the query protocol's code
    w.expect_error("AWS.SimpleQueueService.EmptyBatchRequest", 400, sqs.delete_message_batch, QueueUrl=state["main"], Entries=[])
    bad = w.client(w.KEY_ID, "not-the-secret")
    w.expect_error("SignatureDoesNotMatch", 403, bad.list_queues)


def step_by_hand():
    """A GET with query parameters and a POST to a queue URL: signed as any SDK signs them."""
    main = state["main"]
    status, ctype, root = signed("GET", f"{w.ENDPOINT}/", params={
        "Action": "GetQueueUrl", "QueueName": f"{PREFIX}-main", "Version": "2012-11-05"})
    w.eq((status, ctype), (200, "text/xml"), "GET GetQueueUrl: status and content type")
    w.eq(text(root, "sqs:GetQueueUrlResult/sqs:QueueUrl"), main, "GET GetQueueUrl")
    w.check(text(root, "sqs:ResponseMetadata/sqs:RequestId"), "a RequestId")
    body = "by hand: a+b=c & d"
    status, _, root = signed("POST", main, body={"Action": "SendMessage", "MessageBody": body, "Version": "2012-11-05"})
    w.eq(status, 200, f"POST SendMessage to the queue URL: {ET.tostring(root).decode()}")
    w.eq(text(root, "sqs:SendMessageResult/sqs:MD5OfMessageBody"), w.md5_hex(body.encode()), "MD5")
    status, _, root = signed("GET", main, params={
        "Action": "ReceiveMessage", "Version": "2012-11-05", "AttributeName.1": "All", "WaitTimeSeconds": "1"})
    w.eq((status, text(root, "sqs:ReceiveMessageResult/sqs:Message/sqs:Body")), (200, body), "GET ReceiveMessage at the queue URL")
    status, _, root = signed("GET", main, params={"Action": "PurgeQueue", "Version": "2012-11-05"})
    w.eq(status, 200, "GET PurgeQueue at the queue URL")
    # Errors are XML too, with the JSON protocol's status.
    status, ctype, root = signed("GET", f"{w.ENDPOINT}/", params={"Action": "GetQueueUrl", "QueueName": f"{PREFIX}-missing"})
    w.eq((status, ctype), (400, "text/xml"), "an error's status and content type")
    w.eq((text(root, "sqs:Error/sqs:Type"), text(root, "sqs:Error/sqs:Code")),
         ("Sender", "AWS.SimpleQueueService.NonExistentQueue"), "the error")
    status, _, root = signed("GET", f"{w.ENDPOINT}/", params={"Action": "ReceiveMessage", "QueueUrl": main, "MaxNumberOfMessages": "ten"})
    w.eq((status, text(root, "sqs:Error/sqs:Code")), (400, "InvalidParameterValue"), "a number that is not one")
    status, _, root = signed("POST", f"{w.ENDPOINT}/", body={"Version": "2012-11-05"})
    w.eq((status, text(root, "sqs:Error/sqs:Code")), (400, "MissingAction"), "a form without Action")
    unsigned = urllib.request.Request(f"{w.ENDPOINT}/?Action=ListQueues", method="GET")
    try:
        urllib.request.urlopen(unsigned, timeout=10)
        raise w.Failed("an unsigned GET succeeded")
    except urllib.error.HTTPError as e:
        root = ET.fromstring(e.read())
        w.eq((e.code, text(root, "sqs:Error/sqs:Code")), (403, "MissingAuthenticationToken"), "an unsigned GET")


def step_delete_queues():
    for url in (state["main"], state["dlq"]):
        sqs.delete_queue(QueueUrl=url)
    w.expect_error("AWS.SimpleQueueService.NonExistentQueue", 400, sqs.get_queue_url, QueueName=f"{PREFIX}-main")


STEPS = [
    step_protocol, step_create, step_get_url_and_list, step_attributes, step_send_and_receive,
    step_change_visibility, step_delete, step_purge, step_tags, step_dead_letter_sources_and_moves,
    step_permissions, step_errors, step_by_hand, step_delete_queues,
]


def main():
    print(f"boto3 {boto3.__version__}, botocore {botocore.__version__}, endpoint {w.ENDPOINT}", flush=True)
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
            if name in ("protocol", "create"):
                break  # nothing later means anything
            continue
        print(f"ok   {name} ({time.monotonic() - start:.2f} s)", flush=True)
    if failures:
        print(f"query protocol failed: {', '.join(failures)}", flush=True)
        return 1
    print(f"query protocol passed: all {len(STEPS)} steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
