//! The SQS-compatible endpoint (`POST /` with `X-Amz-Target: AmazonSQS.<Action>`, Signature V4
//! access keys) driven by clients no one here wrote: the AWS SDK for Python (`boto3`, running
//! `tests/sqs/workload.py`, directly and through NGINX), boto3 1.28 over the older query protocol
//! (`tests/sqs/query_protocol.py`) and the AWS SDK for Rust (`aws-sdk-sqs`), and the same queues
//! seen through the native API.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use md5::{Digest, Md5};
use mom_tests::{await_gauge, json, long_polls_held, Broker, Client, Cluster, Nginx, Value};

/// The region every client signs for (the broker's default `MOM_REGION`).
const REGION: &str = "us-east-1";

/// Bound on one run of the Python workload (it takes about 15 s).
const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(240);

/// An access key: id and secret.
#[derive(Debug, Clone)]
struct Key {
    id: String,
    secret: String,
}

/// `POST /v1/users/{user}/access-keys` by `client` (expecting 201).
async fn access_key(client: &Client, user: &str) -> Key {
    let resp = client.post(&format!("/v1/users/{user}/access-keys"), json!({})).await.expect_status(201);
    let field =
        |name: &str| resp.json[name].as_str().unwrap_or_else(|| panic!("no {name} in {resp}")).to_string();
    Key { id: field("access_key_id"), secret: field("secret_access_key") }
}

/// A client of the AWS SDK for Rust for `endpoint` (no retries: the test sees every answer).
async fn sqs_client(endpoint: &str, key: &Key) -> aws_sdk_sqs::Client {
    let credentials = aws_sdk_sqs::config::Credentials::new(&key.id, &key.secret, None, None, "mom-tests");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(credentials)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The SQS error code of a failed SDK call (panics when it succeeded).
fn error_code<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, E>,
    what: &str,
) -> String {
    match result {
        Ok(v) => panic!("{what} succeeded where an error was expected: {v:?}"),
        Err(e) => {
            e.code().unwrap_or_else(|| panic!("{what}: an error without an SQS code: {e:?}")).to_string()
        }
    }
}

fn receive_count(m: &Message) -> u32 {
    m.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .unwrap_or_else(|| panic!("no ApproximateReceiveCount in {m:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("ApproximateReceiveCount of {m:?}: {e}"))
}

fn string_attr(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("a String attribute has every required field")
}

/// One long poll of up to 10 messages with every attribute.
async fn receive(sqs: &aws_sdk_sqs::Client, url: &str, wait_s: i32, visibility: Option<i32>) -> Vec<Message> {
    sqs.receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_s)
        .set_visibility_timeout(visibility)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ReceiveMessage of {url}: {e:?}"))
        .messages
        .unwrap_or_default()
}

/// Long-polls until `count` messages arrived or `timeout` passed.
async fn receive_n(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    count: usize,
    timeout: Duration,
    visibility: Option<i32>,
) -> Vec<Message> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < count && Instant::now() < deadline {
        got.extend(receive(sqs, url, 1, visibility).await);
    }
    got
}

/// `CreateQueue` with these attributes; the queue URL.
async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, &str)],
) -> String {
    let mut req = sqs.create_queue().queue_name(name);
    for (k, v) in attributes {
        req = req.attributes(k.clone(), *v);
    }
    req.send()
        .await
        .unwrap_or_else(|e| panic!("CreateQueue {name}: {e:?}"))
        .queue_url
        .unwrap_or_else(|| panic!("CreateQueue {name}: no QueueUrl"))
}

/// `GetQueueAttributes` of these names.
async fn queue_attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    names: &[QueueAttributeName],
) -> HashMap<QueueAttributeName, String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .set_attribute_names(Some(names.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetQueueAttributes {names:?} of {url}: {e:?}"))
        .attributes
        .unwrap_or_default()
}

/// One queue attribute (panics when it is not answered).
async fn queue_attribute(sqs: &aws_sdk_sqs::Client, url: &str, name: QueueAttributeName) -> String {
    let mut attrs = queue_attributes(sqs, url, std::slice::from_ref(&name)).await;
    attrs.remove(&name).unwrap_or_else(|| panic!("no {name:?} in {attrs:?} of {url}"))
}

/// `SendMessage` of a plain body; the message id.
async fn send(sqs: &aws_sdk_sqs::Client, url: &str, body: &str) -> String {
    sqs.send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("SendMessage to {url}: {e:?}"))
        .message_id
        .unwrap_or_else(|| panic!("SendMessage to {url}: no MessageId"))
}

/// `DeleteMessage` of a received message.
async fn delete_message(sqs: &aws_sdk_sqs::Client, url: &str, m: &Message) {
    sqs.delete_message()
        .queue_url(url)
        .receipt_handle(m.receipt_handle().unwrap_or_else(|| panic!("no ReceiptHandle in {m:?}")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("DeleteMessage of {m:?} in {url}: {e:?}"));
}

/// `ListQueues` with an optional prefix: the URLs.
async fn list_queues(
    sqs: &aws_sdk_sqs::Client,
    prefix: Option<&str>,
) -> Result<Vec<String>, aws_sdk_sqs::error::SdkError<aws_sdk_sqs::operation::list_queues::ListQueuesError>> {
    let answer = sqs.list_queues().set_queue_name_prefix(prefix.map(str::to_string)).send().await?;
    Ok(answer.queue_urls.unwrap_or_default())
}

/// `DeleteQueue`.
async fn delete_queue(sqs: &aws_sdk_sqs::Client, url: &str) {
    sqs.delete_queue().queue_url(url).send().await.unwrap_or_else(|e| panic!("DeleteQueue {url}: {e:?}"));
}

fn bodies(messages: &[Message]) -> Vec<&str> {
    messages.iter().filter_map(Message::body).collect()
}

/// A broker with two plain users, `owner` and `other`, an access key for each, and a queue with
/// `access: restricted` made by `owner` through the native API.
struct Setup {
    broker: Broker,
    owner: Client,
    owner_key: Key,
    other_key: Key,
}

const RESTRICTED_QUEUE: &str = "owners-only";

async fn setup() -> Setup {
    let broker = Cluster::new().start_broker().await;
    let owner = broker.add_user("owner", "user").await;
    broker.add_user("other", "user").await;
    // A user makes their own key; the admin makes one for another user.
    let owner_key = access_key(&owner, "owner").await;
    let other_key = access_key(&broker.client(), "other").await;
    owner.queue(RESTRICTED_QUEUE).create(json!({ "access": "restricted" })).await;
    Setup { broker, owner, owner_key, other_key }
}

/// Runs `tests/sqs/workload.py` (boto3) against `endpoint` and fails unless it exits 0.
async fn run_python_workload(endpoint: &str, setup: &Setup) {
    let python = std::env::var("MOM_PYTHON").unwrap_or_else(|_| "python3".to_string());
    run_python(&python, "sqs/workload.py", endpoint, setup).await;
}

/// Runs a boto3 script of `tests/` with `python` against `endpoint` and fails unless it exits 0.
async fn run_python(python: &str, script: &str, endpoint: &str, setup: &Setup) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script);
    let mut cmd = mom_tests::python::sqs_driver(
        python,
        &script,
        endpoint,
        REGION,
        &setup.owner_key.id,
        &setup.owner_key.secret,
    );
    cmd.env("MOM_SQS_OTHER_KEY_ID", &setup.other_key.id)
        .env("MOM_SQS_OTHER_SECRET", &setup.other_key.secret)
        .env("MOM_SQS_RESTRICTED_QUEUE", RESTRICTED_QUEUE);
    let started = Instant::now();
    let out = tokio::time::timeout(WORKLOAD_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{} did not finish within {WORKLOAD_TIMEOUT:?}", script.display()))
        .unwrap_or_else(|e| panic!("cannot run {python} {}: {e}", script.display()));
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if output.contains("No module named 'boto3'") {
        panic!("boto3 is not installed for {python}: `{python} -m pip install boto3` (.ci/run does)");
    }
    assert!(
        out.status.success(),
        "{} failed ({}) against {endpoint}:\n{output}\n--- broker log:\n{}",
        script.display(),
        out.status,
        setup.broker.log_tail(40)
    );
    println!(
        "--- {} against {endpoint} ({:.1} s):\n{output}---",
        script.display(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn boto3_workload_against_a_broker() {
    let setup = setup().await;
    run_python_workload(&setup.broker.url(), &setup).await;
}

/// NGINX forwards `Host` with the port (`$http_host`), so the signatures SDKs make for the
/// NGINX address still match at the broker, and queue URLs name NGINX.
#[tokio::test]
async fn boto3_workload_through_nginx() {
    let setup = setup().await;
    let nginx = Nginx::start(&[&setup.broker]).await;
    run_python_workload(&nginx.url(), &setup).await;
}

/// The query (XML) protocol of the SDKs released before the JSON protocol: boto3 1.28.0 with
/// botocore 1.31.0, in the virtualenv `.ci/run` makes (`MOM_BOTO3_128_PYTHON`), runs every action
/// (`tests/sqs/query_protocol.py`), plus GETs and POSTs to queue URLs signed by hand.
#[tokio::test]
async fn boto3_1_28_over_the_query_protocol() {
    let python = std::env::var("MOM_BOTO3_128_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/mom-venv-boto3-128/bin/python", std::env::var("HOME").unwrap_or_default())
    });
    if !PathBuf::from(&python).exists() {
        let why = format!("{python} is missing: .ci/run makes the virtualenv with boto3 1.28.0");
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIPPED boto3_1_28_over_the_query_protocol: {why}");
        return;
    }
    let setup = setup().await;
    run_python(&python, "sqs/query_protocol.py", &setup.broker.url(), &setup).await;
}

/// The AWS SDK for Rust: create (with a DLQ and RedrivePolicy) → send batch → long-poll receive →
/// change visibility (single and batch) → delete (single and batch) → dead-letter → errors.
#[tokio::test]
async fn aws_sdk_for_rust_workload() {
    let setup = setup().await;
    let endpoint = setup.broker.url();
    let sqs = sqs_client(&endpoint, &setup.owner_key).await;

    // Create: a DLQ, then a queue sending to it after 2 receives.
    let dlq = create_queue(&sqs, "rs-dlq", &[]).await;
    assert_eq!(dlq, format!("{endpoint}/000000000000/rs-dlq"));
    let dlq_arn = queue_attribute(&sqs, &dlq, QueueAttributeName::QueueArn).await;
    assert_eq!(dlq_arn, format!("arn:aws:sqs:{REGION}:000000000000:rs-dlq"));
    let policy = json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2 }).to_string();
    let main = create_queue(
        &sqs,
        "rs-main",
        &[(QueueAttributeName::VisibilityTimeout, "30"), (QueueAttributeName::RedrivePolicy, &policy)],
    )
    .await;
    let attrs = queue_attributes(&sqs, &main, &[QueueAttributeName::All]).await;
    assert_eq!(
        attrs.get(&QueueAttributeName::VisibilityTimeout).map(String::as_str),
        Some("30"),
        "{attrs:?}"
    );
    let redrive: serde_json::Value = serde_json::from_str(
        attrs
            .get(&QueueAttributeName::RedrivePolicy)
            .unwrap_or_else(|| panic!("no RedrivePolicy in {attrs:?}")),
    )
    .expect("RedrivePolicy is JSON");
    assert_eq!(redrive["deadLetterTargetArn"], json!(dlq_arn));
    assert_eq!(redrive["maxReceiveCount"].to_string().trim_matches('"'), "2");

    // Long poll held before the batch is sent: it answers once the batch arrives.
    let held_before = long_polls_held(&setup.broker.client()).await;
    let poller = {
        let (sqs, main) = (sqs.clone(), main.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            (receive(&sqs, &main, 15, None).await, start.elapsed())
        })
    };
    await_gauge(&setup.broker.client(), "mom_long_polls_held", held_before + 1.0, || poller.is_finished())
        .await;
    let entries: Vec<SendMessageBatchRequestEntry> = (0..4)
        .map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .message_body(format!("rust message {i}"))
                .message_attributes("kind", string_attr("rust"))
                .message_attributes(
                    "n",
                    MessageAttributeValue::builder()
                        .data_type("Number")
                        .string_value(i.to_string())
                        .build()
                        .expect("a Number attribute"),
                )
                .message_attributes(
                    "raw",
                    MessageAttributeValue::builder()
                        .data_type("Binary")
                        .binary_value(Blob::new(vec![0u8, 255, i as u8]))
                        .build()
                        .expect("a Binary attribute"),
                )
                .build()
                .expect("a batch entry")
        })
        .collect();
    let sent = sqs
        .send_message_batch()
        .queue_url(&main)
        .set_entries(Some(entries))
        .send()
        .await
        .expect("SendMessageBatch");
    assert!(sent.failed.is_empty(), "failed entries: {:?}", sent.failed);
    assert_eq!(sent.successful.len(), 4, "{sent:?}");
    for s in &sent.successful {
        let i = &s.id[1..];
        assert_eq!(s.md5_of_message_body, md5_hex(format!("rust message {i}").as_bytes()));
        assert!(s.md5_of_message_attributes.is_some(), "{s:?}");
    }
    let ids: HashMap<String, String> =
        sent.successful.iter().map(|s| (s.message_id.clone(), s.id.clone())).collect();
    let (first, took) = poller.await.expect("the long poll task");
    assert!(!first.is_empty(), "the held long poll answered nothing after {took:?}");
    assert!(took < Duration::from_secs(5), "the held long poll answered after {took:?}");
    let mut got = first;
    got.extend(receive_n(&sqs, &main, 4 - got.len(), Duration::from_secs(10), None).await);
    assert_eq!(got.len(), 4, "{got:?}");
    for m in &got {
        let id = m.message_id().expect("a MessageId");
        let entry = ids.get(id).unwrap_or_else(|| panic!("unexpected message {m:?}"));
        let body = m.body().expect("a Body");
        assert_eq!(body, format!("rust message {}", &entry[1..]));
        assert_eq!(m.md5_of_body(), Some(md5_hex(body.as_bytes()).as_str()));
        assert_eq!(receive_count(m), 1, "{m:?}");
        let attrs = m.message_attributes().unwrap_or_else(|| panic!("no attributes in {m:?}"));
        assert_eq!(attrs["kind"].string_value(), Some("rust"));
        assert_eq!(attrs["n"].data_type(), "Number");
        assert_eq!(attrs["n"].string_value(), Some(&entry[1..]));
        let raw = attrs["raw"].binary_value().expect("a BinaryValue").as_ref();
        assert_eq!(raw, &[0u8, 255, entry[1..].parse::<u8>().unwrap()][..]);
        let digest = sent.successful.iter().find(|s| s.message_id == id);
        assert_eq!(
            m.md5_of_message_attributes(),
            digest.and_then(|s| s.md5_of_message_attributes()),
            "attribute digest at receive vs. at send"
        );
    }
    got.sort_by_key(|m| ids[m.message_id().unwrap_or_default()].clone());

    // Change visibility: one message back at once, then two by batch; the fourth stays hidden.
    let handle = |m: &Message| m.receipt_handle().expect("a ReceiptHandle").to_string();
    sqs.change_message_visibility()
        .queue_url(&main)
        .receipt_handle(handle(&got[0]))
        .visibility_timeout(0)
        .send()
        .await
        .expect("ChangeMessageVisibility");
    let batch: Vec<ChangeMessageVisibilityBatchRequestEntry> = [1, 2]
        .iter()
        .map(|&i| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(format!("v{i}"))
                .receipt_handle(handle(&got[i]))
                .visibility_timeout(0)
                .build()
                .expect("a visibility entry")
        })
        .collect();
    let changed = sqs
        .change_message_visibility_batch()
        .queue_url(&main)
        .set_entries(Some(batch))
        .send()
        .await
        .expect("ChangeMessageVisibilityBatch");
    assert!(changed.failed.is_empty(), "{changed:?}");
    assert_eq!(changed.successful.len(), 2, "{changed:?}");
    let again = receive_n(&sqs, &main, 3, Duration::from_secs(10), None).await;
    let mut again_ids: Vec<&str> = again.iter().filter_map(Message::message_id).collect();
    again_ids.sort_unstable();
    let mut expected: Vec<&str> = got[..3].iter().filter_map(Message::message_id).collect();
    expected.sort_unstable();
    assert_eq!(again_ids, expected, "messages made visible again");
    for m in &again {
        assert_eq!(receive_count(m), 2, "{m:?}");
    }

    // Delete: one alone, the rest by batch (with new handles for the redelivered ones).
    delete_message(&sqs, &main, &again[0]).await;
    let entries: Vec<DeleteMessageBatchRequestEntry> = again[1..]
        .iter()
        .chain(&got[3..])
        .enumerate()
        .map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(format!("d{i}"))
                .receipt_handle(handle(m))
                .build()
                .expect("a delete entry")
        })
        .collect();
    let deleted = sqs
        .delete_message_batch()
        .queue_url(&main)
        .set_entries(Some(entries))
        .send()
        .await
        .expect("DeleteMessageBatch");
    assert!(deleted.failed.is_empty(), "{deleted:?}");
    assert_eq!(deleted.successful.len(), 3, "{deleted:?}");
    let names = [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ];
    let counts = queue_attributes(&sqs, &main, &names).await;
    for name in names {
        assert_eq!(counts.get(&name).map(String::as_str), Some("0"), "{name:?} in {counts:?}");
    }

    // Dead letter: received twice and never deleted, it moves to the DLQ instead of a third delivery.
    let doomed = send(&sqs, &main, "rust doomed").await;
    for n in 1..=2 {
        let got = receive_n(&sqs, &main, 1, Duration::from_secs(10), Some(1)).await;
        assert_eq!(got.len(), 1, "delivery {n}: {got:?}");
        assert_eq!(got[0].message_id(), Some(doomed.as_str()));
        assert_eq!(receive_count(&got[0]), n);
    }
    let late = receive(&sqs, &main, 3, Some(1)).await;
    assert!(late.is_empty(), "a third delivery: {late:?}");
    let dead = receive_n(&sqs, &dlq, 1, Duration::from_secs(10), None).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].body(), Some("rust doomed"));
    delete_message(&sqs, &dlq, &dead[0]).await;

    // Errors, as the SDK reports them.
    let missing = sqs.get_queue_url().queue_name("rs-missing").send().await;
    match &missing {
        Err(e) if e.as_service_error().is_some_and(|e| e.is_queue_does_not_exist()) => {}
        other => {
            panic!("GetQueueUrl of a missing queue: expected QueueDoesNotExist, got {other:?}")
        }
    }
    let wrong_secret = Key { secret: format!("{}x", setup.owner_key.secret), ..setup.owner_key.clone() };
    let forged = sqs_client(&endpoint, &wrong_secret).await;
    assert_eq!(
        error_code(list_queues(&forged, None).await, "ListQueues with a wrong secret"),
        "SignatureDoesNotMatch"
    );
    let unknown = Key { id: "AKIAMOMUNKNOWNKEY000".into(), ..setup.owner_key.clone() };
    let unknown = sqs_client(&endpoint, &unknown).await;
    assert_eq!(
        error_code(list_queues(&unknown, None).await, "ListQueues with an unknown key"),
        "InvalidClientTokenId"
    );

    // Delete both queues.
    for url in [&main, &dlq] {
        delete_queue(&sqs, url).await;
    }
    let left = list_queues(&sqs, Some("rs-")).await.expect("ListQueues");
    assert!(left.is_empty(), "{left:?}");
}

/// The SQS endpoint and the native API share their queues: what one sends, the other receives,
/// and a queue made by either is usable through both.
#[tokio::test]
async fn sqs_and_the_native_api_share_queues() {
    let setup = setup().await;
    let endpoint = setup.broker.url();
    let sqs = sqs_client(&endpoint, &setup.owner_key).await;

    // A queue made natively is seen through SQS, with its configuration.
    let native = setup.owner.queue("bridge");
    native.create(json!({ "visibility_timeout_s": 17 })).await;
    let url = sqs
        .get_queue_url()
        .queue_name("bridge")
        .send()
        .await
        .expect("GetQueueUrl of a native queue")
        .queue_url;
    assert_eq!(url, Some(format!("{endpoint}/000000000000/bridge")));
    let url = url.unwrap_or_default();
    let visibility = queue_attribute(&sqs, &url, QueueAttributeName::VisibilityTimeout).await;
    assert_eq!(visibility, "17");

    // SQS → native.
    let id = sqs
        .send_message()
        .queue_url(&url)
        .message_body("from sqs ✓")
        .message_attributes("color", string_attr("blue"))
        .send()
        .await
        .expect("SendMessage")
        .message_id;
    let got = native.receive_n(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(Some(&got[0].id), id.as_ref(), "the native id is the SQS MessageId");
    assert_eq!(got[0].body, "from sqs ✓");
    let color = got[0].attributes.get("color").map(String::as_str);
    assert_eq!(color, Some("blue"), "{got:?}");
    assert_eq!(got[0].receive_count, 1);
    native.ack_all(&got).await;
    assert_eq!(native.stats().await.counts(), (0, 0, 0));

    // Native → SQS, by a long poll held before the native send.
    let held_before = long_polls_held(&setup.broker.client()).await;
    let poller = {
        let (sqs, url) = (sqs.clone(), url.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            (receive(&sqs, &url, 15, None).await, start.elapsed())
        })
    };
    await_gauge(&setup.broker.client(), "mom_long_polls_held", held_before + 1.0, || poller.is_finished())
        .await;
    let native_id =
        native.send_msg(json!({ "body": "from native", "attributes": { "color": "green" } })).await;
    let (got, took) = poller.await.expect("the long poll task");
    assert!(took < Duration::from_secs(5), "the held long poll answered after {took:?}");
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert_eq!(m.message_id(), Some(native_id.as_str()));
    assert_eq!(m.body(), Some("from native"));
    assert_eq!(m.md5_of_body(), Some(md5_hex(b"from native").as_str()));
    assert_eq!(receive_count(m), 1);
    let attrs = m.message_attributes().unwrap_or_else(|| panic!("no attributes in {m:?}"));
    assert_eq!(attrs["color"].data_type(), "String");
    assert_eq!(attrs["color"].string_value(), Some("green"));
    let leaked: Vec<&String> = attrs.keys().filter(|k| k.starts_with("mom.")).collect();
    assert!(leaked.is_empty(), "broker attributes leaked: {attrs:?}");
    delete_message(&sqs, &url, m).await;
    assert_eq!(native.stats().await.counts(), (0, 0, 0));

    // A queue made through SQS is a native queue with the same settings.
    let made = create_queue(
        &sqs,
        "made-by-sqs",
        &[
            (QueueAttributeName::VisibilityTimeout, "45"),
            (QueueAttributeName::DelaySeconds, "0"),
            (QueueAttributeName::MaximumMessageSize, "4096"),
        ],
    )
    .await;
    let made_natively = setup.owner.queue("made-by-sqs");
    let config = made_natively.get().await.expect_status(200).json;
    assert_eq!(config["visibility_timeout_s"], json!(45), "{config}");
    assert_eq!(config["max_message_bytes"], json!(4096), "{config}");
    assert_eq!(config["owner"], json!("owner"), "the key's user owns the queue: {config}");
    delete_queue(&sqs, &made).await;
    made_natively.get().await.expect_status(404);

    // A purge through SQS empties the native queue.
    native.send_many(&["p1", "p2"]).await;
    sqs.purge_queue().queue_url(&url).send().await.expect("PurgeQueue");
    assert_eq!(native.stats().await.counts(), (0, 0, 0));
}

/// Access keys: listed without secrets, managed only by their user or an admin, refused as soon
/// as deleted (or their user is); the secret never reaches the log or `/metrics`. The grants of
/// the native API apply to SQS calls.
#[tokio::test]
async fn access_keys_and_grants() {
    let setup = setup().await;
    let endpoint = setup.broker.url();
    let admin = setup.broker.client();
    let other = setup.broker.client_as("other", &mom_tests::user_password("other")).await;
    let keys_path = "/v1/users/owner/access-keys";

    // Listed with id and creation time, never the secret.
    let listed = setup.owner.get(keys_path).await.expect_status(200);
    let keys = listed.json["access_keys"].as_array().unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(keys.len(), 1, "{listed}");
    assert_eq!(keys[0]["access_key_id"], json!(setup.owner_key.id), "{listed}");
    let created_at = keys[0]["created_at"].as_str().unwrap_or_default();
    assert!(mom_tests::util::is_rfc3339_millis(created_at), "{listed}");
    assert!(!listed.text.contains(&setup.owner_key.secret), "the secret is listed: {listed}");
    // Only the user and admins manage a user's keys.
    other.post(keys_path, json!({})).await.expect_error(403, "forbidden");
    other.get(keys_path).await.expect_error(403, "forbidden");
    let key_path = format!("{keys_path}/{}", setup.owner_key.id);
    other.delete(&key_path).await.expect_error(403, "forbidden");
    let nobody = admin.post("/v1/users/nobody/access-keys", json!({})).await;
    nobody.expect_error(404, "user_not_found");

    // Grants: a restricted queue refuses SQS calls of a user without one...
    let owner_sqs = sqs_client(&endpoint, &setup.owner_key).await;
    let other_sqs = sqs_client(&endpoint, &setup.other_key).await;
    let url = format!("{endpoint}/000000000000/{RESTRICTED_QUEUE}");
    let send_as =
        |sqs: &aws_sdk_sqs::Client, body: &str| sqs.send_message().queue_url(&url).message_body(body).send();
    let code = error_code(send_as(&other_sqs, "no grant").await, "SendMessage without a grant");
    assert_eq!(code, "AccessDenied");
    // ... allows what is granted (consume) and nothing more (publish) ...
    let grant_path = format!("/v1/queues/{RESTRICTED_QUEUE}/grants/other");
    let grant = |publish: bool| {
        let body = json!({ "publish": publish, "consume": true });
        setup.owner.put(&grant_path, body)
    };
    grant(false).await.expect_status(204);
    let code = error_code(send_as(&other_sqs, "consume only").await, "SendMessage with consume only");
    assert_eq!(code, "AccessDenied");
    send(&owner_sqs, &url, "for other").await;
    let got = receive_n(&other_sqs, &url, 1, Duration::from_secs(5), None).await;
    assert_eq!(bodies(&got), ["for other"]);
    delete_message(&other_sqs, &url, &got[0]).await;
    // ... and publish once granted.
    grant(true).await.expect_status(204);
    send(&other_sqs, &url, "granted").await;

    // A second key works alongside the first; a deleted key is refused at once.
    let second = access_key(&setup.owner, "owner").await;
    assert_ne!(second.id, setup.owner_key.id);
    let second_sqs = sqs_client(&endpoint, &second).await;
    list_queues(&second_sqs, None).await.expect("ListQueues with a second key");
    setup.owner.delete(&key_path).await.expect_status(204);
    let code = error_code(list_queues(&owner_sqs, None).await, "ListQueues with a deleted key");
    assert_eq!(code, "InvalidClientTokenId");
    list_queues(&second_sqs, None).await.expect("ListQueues with the remaining key");
    setup.owner.delete(&key_path).await.expect_status(404);
    let listed = setup.owner.get(keys_path).await.expect_status(200);
    let ids: Vec<&Value> = listed.json["access_keys"]
        .as_array()
        .map(|keys| keys.iter().map(|k| &k["access_key_id"]).collect())
        .unwrap_or_default();
    assert_eq!(ids, [&json!(second.id)], "{listed}");

    // Deleting a user refuses their keys.
    admin.delete("/v1/users/other").await.expect_status(204);
    let code = error_code(list_queues(&other_sqs, None).await, "ListQueues of a deleted user");
    assert_eq!(code, "InvalidClientTokenId");

    // No secret in the log or the metrics.
    let log = std::fs::read_to_string(setup.broker.log_path()).unwrap_or_default();
    let metrics = admin.get("/metrics").await.text;
    for key in [&setup.owner_key, &setup.other_key, &second] {
        assert!(!log.contains(&key.secret), "a secret access key is in the broker's log");
        assert!(!metrics.contains(&key.secret), "a secret access key is in /metrics");
    }
}

/// Queue URLs name `MOM_PUBLIC_URL` when it is set, and ARNs `MOM_REGION`; such a URL works in
/// every call, whatever address the client reached the broker at.
#[tokio::test]
async fn queue_urls_name_the_public_url_and_arns_the_region() {
    let broker = Cluster::new()
        .broker()
        .env("MOM_PUBLIC_URL", "https://mq.example.test/")
        .env("MOM_REGION", "eu-west-3")
        .start()
        .await;
    let owner = broker.add_user("owner", "user").await;
    let key = access_key(&owner, "owner").await;
    let sqs = sqs_client(&broker.url(), &key).await;
    let url = create_queue(&sqs, "public", &[]).await;
    assert_eq!(url, "https://mq.example.test/000000000000/public");
    let arn = queue_attribute(&sqs, &url, QueueAttributeName::QueueArn).await;
    assert_eq!(arn, "arn:aws:sqs:eu-west-3:000000000000:public");
    send(&sqs, &url, "via the public URL").await;
    let got = receive_n(&sqs, &url, 1, Duration::from_secs(5), None).await;
    assert_eq!(bodies(&got), ["via the public URL"]);
    assert_eq!(list_queues(&sqs, None).await.expect("ListQueues"), [url]);
}
