#!/usr/bin/env python3
"""Writes the seed corpus fuzz/corpus/<target>/ (small, meaningful inputs). Run from anywhere;
re-running rewrites the same files. Needs only Python's standard library."""
import base64, hashlib, hmac, json, os, shutil

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def sel(n, payload):
    return bytes([n]) + (payload.encode() if isinstance(payload, str) else payload)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


# ---- http: selector byte, then a body (0..15) or a URI (16..) ----
bodies = {
    0: ['{"visibility_timeout_s":60,"max_receives":5,"dead_letter_queue":"orders-dlq","delay_s":0,"retention_s":86400,"max_message_bytes":262144,"access":"restricted"}',
        '{"max_receives":null,"dead_letter_queue":null}', ""],
    1: ['{"retention_s":604800,"max_message_bytes":1024,"access":"authenticated"}'],
    2: ['{"start":"earliest","filter":{"type":"order","region":"eu"},"no_local":true,"ack_deadline_s":30,"max_receives":3,"dead_letter_queue":"dlq"}',
        '{"start":{"time":"2026-11-25T17:06:29.123Z"}}'],
    3: ['{"body":"hello","attributes":{"type":"order","x.y-z_1":"v"},"delay_s":5,"dedup_id":"abc-1"}'],
    4: ['{"messages":[{"body":"a"},{"body":"b","attributes":{"k":"v"}}]}'],
    5: ['{"max":10,"wait_s":20,"visibility_timeout_s":30}'],
    6: ['{"receipts":["0000000000000007.3.AAAAAAAAAAAAAAAAAAAAAA"]}'],
    7: ['{"receipts":["0000000000000007.3.AAAAAAAAAAAAAAAAAAAAAA"],"delay_s":10}'],
    8: ['{"receipt":"0000000000000007.3.AAAAAAAAAAAAAAAAAAAAAA","visibility_timeout_s":60}'],
    9: ['{"to":"orders"}'],
    10: ['{"time":"2026-11-25T17:06:29Z"}', '{"id":"0000000000000007"}'],
    11: ['{"publish":true,"consume":false}'],
    12: ['{"username":"alice","password":"correct horse battery","role":"admin"}'],
    13: ['{"username":"admin","password":"a long enough password"}'],
    14: ['{"password":"a new long password"}'],
    15: [" \n\t"],
}
for k, vs in bodies.items():
    for i, v in enumerate(vs):
        put("http", f"body-{k:02}-{i}", sel(k, v))
for i, u in enumerate(["/v1/queues/orders", "/v1/queues/a%2Fb", "/v1/topics/t/subscriptions/s/stream?max_in_flight=10",
                       "/v1/topics/t/subscriptions/s/stream?max_in_flight=-1&x=%ZZ", "/v1/queues/%C3%A9t%C3%A9"]):
    put("http", f"uri-{i}", sel(16, u))

# ---- receipt: 0 = scope\nreceipt; 1 = scope\nid\nrc\nposition\ninsert ----
KEY = b"fuzz receipt key: not a secret"


def issue(scope, mid, rc):
    mac = hmac.new(KEY, f"{scope}\n{mid}\n{rc}".encode(), hashlib.sha256).digest()[:16]
    return f"{mid}.{rc}.{b64u(mac)}"


put("receipt", "valid", sel(0, "q/orders\n" + issue("q/orders", "0000000000000007", 3)))
put("receipt", "valid-sub", sel(0, "s/news/all\n" + issue("s/news/all", "00000000000000ff", 1)))
put("receipt", "other-scope", sel(0, "q/other\n" + issue("q/orders", "0000000000000007", 3)))
put("receipt", "garbage", sel(0, "q/orders\nnot.a.receipt"))
put("receipt", "edit-insert", sel(1, "q/orders\n0000000000000007\n3\n17\nx"))
# Regression seeds of finding 1 (RUNS.md): the delivery number spelled "03" or "+3" verifies as 3.
put("receipt", "edit-leading-zero", sel(1, "q/orders\n0000000000000007\n3\n17\n0"))
put("receipt", "edit-plus", sel(1, "q/orders\n0000000000000007\n3\n17\n+"))
put("receipt", "edit-delete", sel(1, "q/orders\n0000000000000007\n18446744073709551615\n20\n-2"))

# ---- token: 0 = Authorization header; 1 = header JSON \0 claims JSON (signed by the target) ----
SECRET = b"fuzz jwt secret: not a secret, 32b"
header = {"typ": "JWT", "alg": "HS256"}
claims = {"sub": "alice", "role": "user", "gen": 0, "inc": 4294967298, "iat": 1764000000, "exp": 4102444800}


def jwt(h, c):
    si = b64u(json.dumps(h, separators=(",", ":")).encode()) + "." + b64u(json.dumps(c, separators=(",", ":")).encode())
    return si + "." + b64u(hmac.new(SECRET, si.encode(), hashlib.sha256).digest())


put("token", "valid", sel(0, "Bearer " + jwt(header, claims)))
put("token", "valid-admin", sel(0, "bearer " + jwt(header, dict(claims, sub="admin", role="admin"))))
put("token", "expired", sel(0, "Bearer " + jwt(header, dict(claims, exp=1000))))
put("token", "alg-none", sel(0, "Bearer " + b64u(b'{"alg":"none"}') + "." + b64u(json.dumps(claims).encode()) + "."))
put("token", "basic", sel(0, "Basic YWxpY2U6cHc="))
put("token", "signed", sel(1, json.dumps(header) + "\0" + json.dumps(claims)))
put("token", "signed-hs512", sel(1, '{"alg":"HS512"}\0' + json.dumps(claims)))
put("token", "signed-extra", sel(1, '{"alg":"HS256","kid":"k","crit":["b64"]}\0' + json.dumps(dict(claims, nbf=1, aud="x"))))

# ---- sqs: 0 message entry, 1 queue attributes, 2 ids/URLs, 3 SigV4 ----
put("sqs", "send", sel(0, json.dumps({
    "QueueUrl": "http://localhost:8080/000000000000/orders", "MessageBody": "hello", "DelaySeconds": 0,
    "MessageAttributes": {"s": {"DataType": "String", "StringValue": "v"},
                          "n": {"DataType": "Number.int", "StringValue": "42"},
                          "b": {"DataType": "Binary", "BinaryValue": "AAEC/w=="}},
    "MessageDeduplicationId": "d1"})))
put("sqs", "send-batch-entry", sel(0, json.dumps({"Id": "1", "MessageBody": "x", "MessageAttributes": {"c": {"DataType": "String.custom", "StringValue": ""}}})))
put("sqs", "attrs", sel(1, json.dumps({"VisibilityTimeout": "60", "DelaySeconds": "5", "MessageRetentionPeriod": "86400",
                                        "MaximumMessageSize": "1024",
                                        "RedrivePolicy": json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq", "maxReceiveCount": "5"})})))
put("sqs", "attrs-numeric-redrive", sel(1, json.dumps({"RedrivePolicy": '{"deadLetterTargetArn":"arn:aws:sqs:r:0:dlq","maxReceiveCount":3}'})))
put("sqs", "ids", sel(2, json.dumps(["1", "2", "a-b_c", "http://h/000000000000/orders", "http://h/000000000000/orders/"])))
put("sqs", "sigv4-doc", sel(3,
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, "
    "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7\n20150830T123600Z\nGET\n/\n"
    "Action=ListUsers&Version=2010-05-08\ncontent-type: application/x-www-form-urlencoded; charset=utf-8\nhost: iam.amazonaws.com\n\n"))
put("sqs", "sigv4-sdk", sel(3,
    "AWS4-HMAC-SHA256 Credential=AKIA0000/20261125/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
    "Signature=0000000000000000000000000000000000000000000000000000000000000000\n20261125T170629Z\nPOST\n/\n\n"
    "content-type: application/x-amz-json-1.0\nhost: localhost:8080\nx-amz-target: AmazonSQS.SendMessage\n"
    "x-amz-content-sha256: UNSIGNED-PAYLOAD\n\n{\"QueueUrl\":\"q\",\"MessageBody\":\"x\"}"))

# ---- grpc: selector, then protobuf bytes ----
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def fld(num, wt, payload):
    key = varint(num << 3 | wt)
    if wt == 0:
        return key + varint(payload)
    payload = payload.encode() if isinstance(payload, str) else payload
    return key + varint(len(payload)) + payload


def entry(k, v):
    return fld(1, 2, k) + fld(2, 2, v)


outgoing = fld(1, 2, "hello") + fld(2, 2, entry("type", "order")) + fld(3, 0, 5) + fld(4, 2, "d1")
queue_cfg = fld(1, 0, 60) + fld(2, 0, 5) + fld(3, 2, "dlq") + fld(4, 0, 0) + fld(5, 0, 86400) + fld(6, 0, 262144) + fld(7, 0, 2)
put("grpc", "create-queue", bytes([0]) + fld(1, 2, "orders") + fld(2, 2, queue_cfg))
put("grpc", "send", bytes([1]) + fld(1, 2, "orders") + fld(2, 2, outgoing))
put("grpc", "send-batch", bytes([2]) + fld(1, 2, "orders") + fld(2, 2, outgoing) + fld(2, 2, fld(1, 2, "b")))
put("grpc", "publish", bytes([3]) + fld(1, 2, "news") + fld(2, 2, outgoing))
put("grpc", "receive", bytes([4]) + fld(1, 2, "orders") + fld(4, 0, 10) + fld(5, 0, 20) + fld(6, 0, 30))
put("grpc", "ack", bytes([5]) + fld(1, 2, "orders") + fld(4, 2, issue("q/orders", "0000000000000007", 3)))
put("grpc", "nack", bytes([6]) + fld(2, 2, "news") + fld(3, 2, "all") + fld(4, 2, "x.1.y") + fld(5, 0, 10))
put("grpc", "extend", bytes([7]) + fld(1, 2, "orders") + fld(4, 2, "0000000000000007.3.AAAA") + fld(5, 0, 60))
put("grpc", "create-topic", bytes([8]) + fld(1, 2, "news") + fld(2, 2, fld(1, 0, 604800) + fld(2, 0, 1024) + fld(3, 0, 1)))
sub_cfg = fld(1, 2, "2026-11-25T17:06:29Z") + fld(2, 2, entry("type", "order")) + fld(3, 0, 1) + fld(4, 0, 30) + fld(5, 0, 3) + fld(6, 2, "dlq")
put("grpc", "create-subscription", bytes([9]) + fld(1, 2, "news") + fld(2, 2, "all") + fld(3, 2, sub_cfg))
put("grpc", "create-subscription-earliest", bytes([9]) + fld(1, 2, "news") + fld(2, 2, "all") + fld(3, 2, fld(1, 2, "earliest")))
put("grpc", "subscribe", bytes([10]) + fld(1, 2, "news") + fld(2, 2, "all") + fld(3, 0, 100))
put("grpc", "delete-subscription", bytes([11]) + fld(1, 2, "news") + fld(2, 2, "all"))

# ---- mom_yaml: the example file, momctl init's output shape, and the error tests' shapes ----
repo = os.path.dirname(ROOT)
with open(os.path.join(repo, "mom.yaml"), "rb") as f:
    put("mom_yaml", "example", f.read())
yamls = {
    "minimal": "cluster: demo\n",
    "aws": "cluster: demo\nprovider: aws\naws: { region: us-east-1, instance_type: t3.small, hosts: 3, ami: null, admin_cidr: 203.0.113.0/24 }\n",
    "full-flow": "cluster: c1\nnetwork: { subnet: 10.210.0.0/24 }\nbroker: { image: mom-broker:0.1.0, nodes: 64 }\n"
                 "redis: { image: mom-redis:7, mode: single, appendfsync: always }\nzookeeper: { image: z:1, nodes: 1 }\n"
                 "nginx: { image: n:1, http_port: 80, grpc_port: null, bind: 0.0.0.0, tls: null }\n"
                 "secrets: { admin_password_env: MOM_ADMIN_PASSWORD }\n",
    "bad-nodes": "cluster: demo\nbroker:\n  nodes: 65\n",
    "bad-key": "cluster: demo\nbroker:\n  image: x\n  node: 3\n",
    "grpc-clash": "cluster: demo\nnginx:\n  http_port: 9090\n  grpc_port: 9090\n",
    "anchors": "cluster: &c demo\nbroker: &b { image: *c, nodes: 2 }\nredis: { mode: replicated }\n",
    "broken": "cluster: demo\nbroker: [\n",
    "tls": "cluster: demo\nnginx:\n  tls: self_signed\n",
    # Regression seed of finding 2 (RUNS.md): the default grpc_port equals this http_port.
    "regress-grpc-default-clash": "cluster: demo\nnginx:\n  http_port: 9090\n",
}
for name, text in yamls.items():
    put("mom_yaml", name, text)
print("seeds written to", OUT)
