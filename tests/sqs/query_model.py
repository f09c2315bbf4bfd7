#!/usr/bin/env python3
"""Writes broker/src/sqs/query-model.json: what the SQS query (XML) protocol needs of botocore's
service model, `botocore/data/sqs/2012-11-05/service-2.json` of botocore 1.31.x (the last releases
speaking the query protocol; botocore is Apache-2.0).

The broker's `sqs/query.rs` reads the flattened form parameters and writes the XML answers from
it, so every name (`Attribute.1.Name`, `SendMessageBatchRequestEntry.2.Id`, `<QueueUrl>`...) and
every error code of the query protocol (`AWS.SimpleQueueService.NonExistentQueue`) is botocore's,
not retyped. Kept: each operation's input, output and result wrapper; each shape's type, members
(in the model's order), list member, map key and value, `locationName` and `flattened`; each error
shape's code. Dropped: documentation, constraints, enums.

    python3 tests/sqs/query_model.py            # rewrite the file from the installed botocore
    python3 tests/sqs/query_model.py --check    # exit 1 if the file differs (tests/sqs/query_protocol.py does)
"""

import json
import os
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "broker", "src", "sqs", "query-model.json")

TRAITS = ("locationName", "flattened")


def ref(r):
    return {k: r[k] for k in ("shape",) + TRAITS if k in r}


def strip(service):
    shapes = {}
    for name, s in sorted(service["shapes"].items()):
        out = {"type": s["type"]}
        out.update({k: s[k] for k in TRAITS if k in s})
        if "members" in s:
            out["members"] = [[m, ref(r)] for m, r in s["members"].items()]
        for part in ("member", "key", "value"):
            if part in s:
                out[part] = ref(s[part])
        if "error" in s:
            out["error"] = s["error"]["code"]
        shapes[name] = out
    operations = {}
    for name, op in sorted(service["operations"].items()):
        o = {}
        if "input" in op:
            o["input"] = op["input"]["shape"]
        if "output" in op:
            o["output"] = op["output"]["shape"]
            if "resultWrapper" in op["output"]:
                o["resultWrapper"] = op["output"]["resultWrapper"]
        operations[name] = o
    return {
        "source": "botocore/data/sqs/2012-11-05/service-2.json of botocore (tests/sqs/query_model.py)",
        "protocol": service["metadata"]["protocol"],
        "xmlNamespace": service["metadata"]["xmlNamespace"],
        "operations": operations,
        "shapes": shapes,
    }


def render():
    import botocore.loaders

    service = botocore.loaders.Loader().load_service_model("sqs", "service-2", "2012-11-05")
    if service["metadata"]["protocol"] != "query":
        sys.exit("this botocore's SQS model speaks %s, not query: use botocore 1.31.x" % service["metadata"]["protocol"])
    return dumps(strip(service))


def dumps(model):
    """JSON with one operation or shape a line, so that a change to the model reads as a small diff."""

    def table(d):
        return "{\n" + ",\n".join("  %s: %s" % (json.dumps(k), json.dumps(v, separators=(",", ":"))) for k, v in d.items()) + "\n }"

    head = ",\n".join(" %s: %s" % (json.dumps(k), json.dumps(v)) for k, v in model.items() if not isinstance(v, dict))
    return "{\n%s,\n \"operations\": %s,\n \"shapes\": %s\n}\n" % (head, table(model["operations"]), table(model["shapes"]))


def main():
    text = render()
    if "--check" in sys.argv:
        with open(OUT) as f:
            if f.read() != text:
                sys.exit("%s differs from the installed botocore's model: rerun %s" % (OUT, sys.argv[0]))
        print("query-model.json matches the installed botocore")
        return
    with open(OUT, "w") as f:
        f.write(text)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
