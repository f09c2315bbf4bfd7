//! SQS fidelity (issue 22, points 1, 2, 3, 4 and 6): attribute names in any case, every queue
//! attribute, tags (SQS and native), dead-letter sources, message move tasks, permissions, UUID
//! message ids across the product, system attributes, an empty receive without `Messages`, and
//! SQS's validation rules with its codes and wording; through the AWS SDK for Rust, the native
//! API, and real clients from PyPI: the AWS CLI (`tests/sqs/awscli_actions.py`) and a Celery
//! worker on kombu's SQS transport (`tests/sqs/celery_worker.py`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, MessageSystemAttributeNameForSends,
    MessageSystemAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry,
};
use mom_tests::{json, Broker, Client, Cluster, Value};

const REGION: &str = "us-east-1";
/// Bound on one run of a Python driver (each takes a few seconds).
const DRIVER_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
struct Key {
    id: String,
    secret: String,
}

async fn access_key(client: &Client, user: &str) -> Key {
    let resp = client.post(&format!("/v1/users/{user}/access-keys"), json!({})).await.expect_status(201);
    let field =
        |name: &str| resp.json[name].as_str().unwrap_or_else(|| panic!("no {name} in {resp}")).to_string();
    Key { id: field("access_key_id"), secret: field("secret_access_key") }
}

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

/// A broker, a plain user `owner` (native client and SQS client) and a second user `other`.
struct Setup {
    broker: Broker,
    owner: Client,
    other: Client,
    key: Key,
    sqs: aws_sdk_sqs::Client,
}

async fn setup() -> Setup {
    let broker = Cluster::new().start_broker().await;
    let owner = broker.add_user("owner", "user").await;
    let other = broker.add_user("other", "user").await;
    let key = access_key(&owner, "owner").await;
    let sqs = sqs_client(&broker.url(), &key).await;
    Setup { broker, owner, other, key, sqs }
}

/// The SQS error code and message of a failed call (panics when it succeeded).
fn error<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    r: Result<T, E>,
    what: &str,
) -> (String, String) {
    match r {
        Ok(v) => panic!("{what} succeeded where an error was expected: {v:?}"),
        Err(e) => (
            e.code().unwrap_or_else(|| panic!("{what}: no SQS code in {e:?}")).to_string(),
            e.message().unwrap_or_default().to_string(),
        ),
    }
}

fn string_attr(v: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("String").string_value(v).build().expect("a String attribute")
}

/// A UUID in the 8-4-4-4-12 form with version 8 and the RFC 9562 variant.
fn assert_uuid(id: &str) {
    let groups: Vec<&str> = id.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    assert_eq!(lens, [8, 4, 4, 4, 12], "{id:?} is not a UUID");
    assert!(id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()), "{id:?} is not a UUID");
    assert_eq!(&id[14..15], "8", "{id:?}: not version 8");
    assert!("89ab".contains(&id[19..20]), "{id:?}: not the RFC 9562 variant");
}

async fn create(sqs: &aws_sdk_sqs::Client, name: &str, attrs: &[(QueueAttributeName, &str)]) -> String {
    let mut req = sqs.create_queue().queue_name(name);
    for (k, v) in attrs {
        req = req.attributes(k.clone(), *v);
    }
    req.send().await.unwrap_or_else(|e| panic!("CreateQueue {name}: {e:?}")).queue_url.unwrap_or_default()
}

async fn attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> std::collections::HashMap<QueueAttributeName, String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::from("ALL"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetQueueAttributes ALL of {url}: {e:?}"))
        .attributes
        .unwrap_or_default()
}

fn arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:000000000000:{name}")
}

/// `ALL`/`all` select every attribute, system attributes come as SQS has them (`SenderId`,
/// `ApproximateFirstReceiveTimestamp`, `AWSTraceHeader` sent as a system attribute), ids are
/// UUIDs, and an empty receive has no `Messages`.
#[tokio::test]
async fn attribute_names_in_any_case_system_attributes_and_an_empty_receive() {
    let s = setup().await;
    let url = create(&s.sqs, "cases", &[]).await;
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
    let sent = s
        .sqs
        .send_message()
        .queue_url(&url)
        .message_body("hello")
        .message_attributes("color", string_attr("blue"))
        .message_system_attributes(
            MessageSystemAttributeNameForSends::AwsTraceHeader,
            MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(trace)
                .build()
                .expect("a trace header"),
        )
        .send()
        .await
        .expect("SendMessage with a trace header");
    let id = sent.message_id.clone().unwrap_or_default();
    assert_uuid(&id);
    assert!(sent.md5_of_message_system_attributes.is_some(), "{sent:?}");
    let sent_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut first_receive = None;
    for (round, (system, user)) in [("ALL", "all"), ("all", "ALL")].into_iter().enumerate() {
        let got = s
            .sqs
            .receive_message()
            .queue_url(&url)
            .message_system_attribute_names(MessageSystemAttributeName::from(system))
            .message_attribute_names(user)
            .visibility_timeout(0)
            .send()
            .await
            .expect("ReceiveMessage")
            .messages
            .unwrap_or_default();
        assert_eq!(got.len(), 1, "{got:?}");
        let m = &got[0];
        assert_eq!(m.message_id(), Some(id.as_str()));
        let attrs = m.attributes().unwrap_or_else(|| panic!("no Attributes for {system}: {m:?}"));
        let get = |n: &str| {
            attrs
                .get(&MessageSystemAttributeName::from(n))
                .cloned()
                .unwrap_or_else(|| panic!("no {n} in {attrs:?}"))
        };
        assert_eq!(get("SenderId"), "owner");
        assert_eq!(get("AWSTraceHeader"), trace);
        assert_eq!(get("ApproximateReceiveCount"), (round + 1).to_string());
        let first: i64 = get("ApproximateFirstReceiveTimestamp").parse().expect("a timestamp");
        assert!((first - sent_ms).abs() < 10_000, "ApproximateFirstReceiveTimestamp {first} vs. {sent_ms}");
        assert_eq!(
            *first_receive.get_or_insert(first),
            first,
            "the first receive's time changed on a later receive"
        );
        assert_eq!(
            m.message_attributes().and_then(|a| a.get("color")).and_then(|v| v.string_value()),
            Some("blue")
        );
        if round == 1 {
            s.sqs
                .delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("DeleteMessage");
        }
    }
    // Broker attributes stay out of the native answer's client attributes only by their `mom.` prefix.
    let empty = s.sqs.receive_message().queue_url(&url).send().await.expect("an empty ReceiveMessage");
    assert!(empty.messages.is_none(), "an empty receive answered Messages: {empty:?}");
}

/// Every queue attribute SQS defines is accepted and read back; ReceiveMessageWaitTimeSeconds is
/// the default wait; RedriveAllowPolicy decides who may use a queue as dead-letter queue (for the
/// native API too); the KMS, SSE and Policy attributes are kept.
#[tokio::test]
async fn every_queue_attribute_is_accepted_and_read_back() {
    let s = setup().await;
    let policy = json!({ "Version": "2012-10-17", "Statement": [] }).to_string();
    let allow = json!({ "redrivePermission": "byQueue", "sourceQueueArns": [arn("allowed")] }).to_string();
    let dlq = create(&s.sqs, "guarded-dlq", &[(QueueAttributeName::RedriveAllowPolicy, &allow)]).await;
    let redrive = json!({ "deadLetterTargetArn": arn("guarded-dlq"), "maxReceiveCount": 3 }).to_string();
    let given: Vec<(QueueAttributeName, &str)> = vec![
        (QueueAttributeName::VisibilityTimeout, "40"),
        (QueueAttributeName::DelaySeconds, "0"),
        (QueueAttributeName::MessageRetentionPeriod, "7200"),
        (QueueAttributeName::MaximumMessageSize, "2048"),
        (QueueAttributeName::ReceiveMessageWaitTimeSeconds, "2"),
        (QueueAttributeName::RedrivePolicy, &redrive),
        (QueueAttributeName::Policy, &policy),
        (QueueAttributeName::KmsMasterKeyId, "alias/aws/sqs"),
        (QueueAttributeName::KmsDataKeyReusePeriodSeconds, "600"),
        (QueueAttributeName::SqsManagedSseEnabled, "false"),
    ];
    let url = create(&s.sqs, "allowed", &given).await;
    let got = attributes(&s.sqs, &url).await;
    for (k, v) in &given {
        let answered = got.get(k).unwrap_or_else(|| panic!("no {k:?} in {got:?}"));
        if *k == QueueAttributeName::RedrivePolicy {
            let p: Value = serde_json::from_str(answered).expect("RedrivePolicy is JSON");
            assert_eq!(p["deadLetterTargetArn"], json!(arn("guarded-dlq")));
        } else {
            assert_eq!(answered, v, "{k:?}");
        }
    }
    let allow_back: Value =
        serde_json::from_str(&attributes(&s.sqs, &dlq).await[&QueueAttributeName::RedriveAllowPolicy])
            .expect("JSON");
    assert_eq!(allow_back, serde_json::from_str::<Value>(&allow).expect("JSON"));
    // The native API shows the wait and the policy too.
    let native = s.owner.queue("allowed").get().await.expect_status(200).json;
    assert_eq!(native["receive_wait_s"], json!(2), "{native}");
    let native_dlq = s.owner.queue("guarded-dlq").get().await.expect_status(200).json;
    assert_eq!(
        native_dlq["redrive_allow"],
        json!({ "permission": "byQueue", "source_queues": ["allowed"] }),
        "{native_dlq}"
    );

    // A receive naming no wait waits ReceiveMessageWaitTimeSeconds.
    let start = Instant::now();
    let empty = s.sqs.receive_message().queue_url(&url).send().await.expect("ReceiveMessage");
    let waited = start.elapsed();
    assert!(empty.messages.is_none());
    assert!(waited >= Duration::from_millis(1900) && waited < Duration::from_secs(6), "waited {waited:?}");
    let start = Instant::now();
    s.sqs.receive_message().queue_url(&url).wait_time_seconds(0).send().await.expect("ReceiveMessage");
    assert!(start.elapsed() < Duration::from_secs(1), "WaitTimeSeconds 0 waited {:?}", start.elapsed());

    // RedriveAllowPolicy: another queue may not use the DLQ, through SQS or natively.
    let (code, msg) = error(
        s.sqs
            .create_queue()
            .queue_name("denied")
            .attributes(QueueAttributeName::RedrivePolicy, &redrive)
            .send()
            .await,
        "CreateQueue with a disallowed dead-letter queue",
    );
    assert_eq!(code, "InvalidParameterValue", "{msg}");
    assert!(msg.contains("RedriveAllowPolicy"), "{msg}");
    s.owner.queue("denied-native").create(json!({})).await;
    s.owner
        .queue("denied-native")
        .patch(json!({ "max_receives": 2, "dead_letter_queue": "guarded-dlq" }))
        .await
        .expect_error(400, "invalid_request");
    // denyAll refuses even the listed queue once it changes its policy; allowAll (or none) lets it.
    let deny = json!({ "redrivePermission": "denyAll" }).to_string();
    s.sqs
        .set_queue_attributes()
        .queue_url(&dlq)
        .attributes(QueueAttributeName::RedriveAllowPolicy, &deny)
        .send()
        .await
        .expect("SetQueueAttributes denyAll");
    let again = json!({ "deadLetterTargetArn": arn("guarded-dlq"), "maxReceiveCount": 4 }).to_string();
    let (code, _) = error(
        s.sqs
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(QueueAttributeName::RedrivePolicy, &again)
            .send()
            .await,
        "SetQueueAttributes under denyAll",
    );
    assert_eq!(code, "InvalidParameterValue");
    s.sqs
        .set_queue_attributes()
        .queue_url(&dlq)
        .attributes(QueueAttributeName::RedriveAllowPolicy, "")
        .send()
        .await
        .expect("clearing RedriveAllowPolicy");
    s.sqs
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::RedrivePolicy, &again)
        .send()
        .await
        .expect("SetQueueAttributes allowed again");

    // Bad values and names, in SQS's codes.
    for (k, v) in [
        (QueueAttributeName::ReceiveMessageWaitTimeSeconds, "21"),
        (QueueAttributeName::MaximumMessageSize, "1023"),
        (QueueAttributeName::KmsDataKeyReusePeriodSeconds, "59"),
        (QueueAttributeName::SqsManagedSseEnabled, "maybe"),
        (QueueAttributeName::Policy, "not json"),
    ] {
        let r = s.sqs.set_queue_attributes().queue_url(&url).attributes(k.clone(), v).send().await;
        assert_eq!(error(r, &format!("{k:?}={v}")).0, "InvalidAttributeValue", "{k:?}={v}");
    }
    let r = s
        .sqs
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::from("NoSuch"), "1")
        .send()
        .await;
    assert_eq!(error(r, "an unknown attribute").0, "InvalidAttributeName");
    let r = s
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::from("NoSuch"))
        .send()
        .await;
    assert_eq!(error(r, "GetQueueAttributes of an unknown name").0, "InvalidAttributeName");
    let modified: i64 =
        attributes(&s.sqs, &url).await[&QueueAttributeName::LastModifiedTimestamp].parse().expect("seconds");
    let created: i64 =
        attributes(&s.sqs, &url).await[&QueueAttributeName::CreatedTimestamp].parse().expect("seconds");
    assert!(modified >= created, "LastModifiedTimestamp {modified} before CreatedTimestamp {created}");
}

/// Tags: CreateQueue `tags`, TagQueue, UntagQueue, ListQueueTags, and the native routes, with
/// their limits and rights.
#[tokio::test]
async fn tags_through_sqs_and_the_native_api() {
    let s = setup().await;
    let url = s
        .sqs
        .create_queue()
        .queue_name("tagged")
        .tags("team", "payments")
        .tags("env", "test")
        .send()
        .await
        .expect("CreateQueue with tags")
        .queue_url
        .unwrap_or_default();
    let listed = |sqs: aws_sdk_sqs::Client, url: String| async move {
        sqs.list_queue_tags().queue_url(url).send().await.expect("ListQueueTags").tags.unwrap_or_default()
    };
    let tags = listed(s.sqs.clone(), url.clone()).await;
    assert_eq!(tags.len(), 2, "{tags:?}");
    assert_eq!(tags["team"], "payments");
    s.sqs
        .tag_queue()
        .queue_url(&url)
        .tags("team", "billing")
        .tags("tier", "1")
        .send()
        .await
        .expect("TagQueue");
    s.sqs.untag_queue().queue_url(&url).tag_keys("env").tag_keys("absent").send().await.expect("UntagQueue");
    let native = s.owner.get("/v1/queues/tagged/tags").await.expect_status(200).json;
    assert_eq!(native, json!({ "tags": { "team": "billing", "tier": "1" } }));

    // Native: merge, remove, list; rights and limits.
    let path = "/v1/queues/tagged/tags";
    let merged = s.owner.put(path, json!({ "tags": { "owner": "ops" } })).await.expect_status(200).json;
    assert_eq!(merged["tags"]["owner"], json!("ops"), "{merged}");
    let left = s
        .owner
        .request(reqwest::Method::DELETE, path, mom_tests::Body::Json(json!({ "keys": ["tier"] })))
        .await
        .expect_status(200)
        .json;
    assert_eq!(left, json!({ "tags": { "owner": "ops", "team": "billing" } }));
    assert_eq!(listed(s.sqs.clone(), url.clone()).await.len(), 2);
    s.other.get(path).await.expect_status(200);
    s.other.put(path, json!({ "tags": { "x": "y" } })).await.expect_error(403, "forbidden");
    s.owner.put(path, json!({ "tags": { "k".repeat(129): "v" } })).await.expect_error(400, "invalid_request");
    s.owner.put(path, json!({ "tags": { "k": "v".repeat(257) } })).await.expect_error(400, "invalid_request");
    let fifty: serde_json::Map<String, Value> = (0..49).map(|i| (format!("t{i}"), json!("v"))).collect();
    s.owner.put(path, json!({ "tags": fifty })).await.expect_error(400, "invalid_request");
    s.owner.get("/v1/queues/nowhere/tags").await.expect_error(404, "queue_not_found");
    s.owner.queue("born-tagged").create(json!({ "tags": { "a": "1" } })).await;
    assert_eq!(
        s.owner.get("/v1/queues/born-tagged/tags").await.expect_status(200).json,
        json!({ "tags": { "a": "1" } })
    );
    let mut too_many = s.sqs.tag_queue().queue_url(&url);
    for i in 0..49 {
        too_many = too_many.tags(format!("s{i}"), "v");
    }
    assert_eq!(error(too_many.send().await, "TagQueue past 50 tags").0, "InvalidParameterValue");
}

/// ListDeadLetterSourceQueues, and message move tasks over the native redrive: to the sources,
/// to a destination at a rate, one at a time, cancelled, listed newest first.
#[tokio::test]
async fn dead_letter_sources_and_message_move_tasks() {
    let s = setup().await;
    let sqs = &s.sqs;
    let dlq = create(sqs, "mv-dlq", &[]).await;
    let redrive = json!({ "deadLetterTargetArn": arn("mv-dlq"), "maxReceiveCount": 1 }).to_string();
    let main = create(sqs, "mv-main", &[(QueueAttributeName::RedrivePolicy, &redrive)]).await;
    let second = create(sqs, "mv-second", &[(QueueAttributeName::RedrivePolicy, &redrive)]).await;
    let other = create(sqs, "mv-other", &[]).await;
    let sources = sqs
        .list_dead_letter_source_queues()
        .queue_url(&dlq)
        .send()
        .await
        .expect("ListDeadLetterSourceQueues");
    assert_eq!(sources.queue_urls, [main.clone(), second.clone()]);
    let none = sqs
        .list_dead_letter_source_queues()
        .queue_url(&other)
        .send()
        .await
        .expect("ListDeadLetterSourceQueues");
    assert!(none.queue_urls.is_empty());

    // Five dead letters: received twice (maxReceiveCount 1).
    let entries: Vec<SendMessageBatchRequestEntry> = (0..5)
        .map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .message_body(format!("dead {i}"))
                .build()
                .expect("entry")
        })
        .collect();
    sqs.send_message_batch()
        .queue_url(&main)
        .set_entries(Some(entries))
        .send()
        .await
        .expect("SendMessageBatch");
    for _ in 0..2 {
        sqs.receive_message()
            .queue_url(&main)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .expect("ReceiveMessage");
    }
    let main_q = s.owner.queue("mv-main");
    let dlq_q = s.owner.queue("mv-dlq");
    mom_tests::wait_until("five dead letters", Duration::from_secs(10), || async {
        (dlq_q.stats().await.counts().0 == 5).then_some(())
    })
    .await;

    let handle = sqs
        .start_message_move_task()
        .source_arn(arn("mv-dlq"))
        .send()
        .await
        .expect("StartMessageMoveTask")
        .task_handle
        .unwrap_or_default();
    let done = mom_tests::wait_until("the move task to complete", Duration::from_secs(10), || async {
        let r = sqs
            .list_message_move_tasks()
            .source_arn(arn("mv-dlq"))
            .send()
            .await
            .expect("ListMessageMoveTasks");
        r.results.unwrap_or_default().into_iter().next().filter(|t| t.status() == Some("COMPLETED"))
    })
    .await;
    assert_eq!(done.approximate_number_of_messages_moved, 5, "{done:?}");
    assert_eq!(done.approximate_number_of_messages_to_move, Some(5), "{done:?}");
    assert!(done.task_handle.is_none(), "a finished task has no handle: {done:?}");
    assert_eq!(main_q.stats().await.counts().0, 5, "the dead letters are back in their source");
    assert_eq!(dlq_q.stats().await.counts(), (0, 0, 0));
    let (code, _) =
        error(sqs.cancel_message_move_task().task_handle(&handle).send().await, "cancelling a finished task");
    assert_eq!(code, "UnsupportedOperation");

    // At one message a second to another queue: running, alone, cancelled.
    dlq_q.send_many(&["a", "b", "c", "d", "e", "f"]).await;
    let start = sqs
        .start_message_move_task()
        .source_arn(arn("mv-dlq"))
        .destination_arn(arn("mv-other"))
        .max_number_of_messages_per_second(1)
        .send()
        .await
        .expect("StartMessageMoveTask at a rate");
    let listed = sqs
        .list_message_move_tasks()
        .source_arn(arn("mv-dlq"))
        .max_results(10)
        .send()
        .await
        .expect("ListMessageMoveTasks")
        .results
        .unwrap_or_default();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0].status(), Some("RUNNING"), "newest first: {listed:?}");
    assert_eq!(listed[0].task_handle(), start.task_handle());
    assert_eq!(listed[0].destination_arn(), Some(arn("mv-other").as_str()));
    assert_eq!(listed[0].max_number_of_messages_per_second(), Some(1));
    let (code, _) =
        error(sqs.start_message_move_task().source_arn(arn("mv-dlq")).send().await, "a second task");
    assert_eq!(code, "UnsupportedOperation");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cancelled = sqs
        .cancel_message_move_task()
        .task_handle(start.task_handle().unwrap_or_default())
        .send()
        .await
        .expect("CancelMessageMoveTask");
    let moved_at_cancel = cancelled.approximate_number_of_messages_moved;
    let last = mom_tests::wait_until("the task to stop", Duration::from_secs(10), || async {
        let r = sqs
            .list_message_move_tasks()
            .source_arn(arn("mv-dlq"))
            .send()
            .await
            .expect("ListMessageMoveTasks");
        r.results.unwrap_or_default().into_iter().next().filter(|t| t.status() == Some("CANCELLED"))
    })
    .await;
    let moved = last.approximate_number_of_messages_moved;
    assert!(
        (1..6).contains(&moved) && moved >= moved_at_cancel,
        "moved {moved} (at cancel {moved_at_cancel}) of 6 at 1/s"
    );
    let in_other = s.owner.queue("mv-other").stats().await.counts().0;
    assert_eq!(in_other as i64, moved, "messages in the destination");
    assert_eq!(dlq_q.stats().await.counts().0 as i64, 6 - moved, "messages left in the DLQ");

    // Errors: a queue that is no DLQ, a missing queue, a handle that names nothing.
    assert_eq!(
        error(sqs.start_message_move_task().source_arn(arn("mv-other")).send().await, "not a DLQ").0,
        "UnsupportedOperation"
    );
    assert_eq!(
        error(sqs.start_message_move_task().source_arn(arn("mv-missing")).send().await, "missing").0,
        "ResourceNotFoundException"
    );
    assert_eq!(
        error(sqs.cancel_message_move_task().task_handle("bm90IGEgaGFuZGxl").send().await, "bad handle").0,
        "ResourceNotFoundException"
    );
}

/// AddPermission and RemovePermission edit the queue's Policy, as on SQS (kept, no effect here).
#[tokio::test]
async fn add_and_remove_permission_edit_the_policy() {
    let s = setup().await;
    let url = create(&s.sqs, "shared", &[]).await;
    s.sqs
        .add_permission()
        .queue_url(&url)
        .label("partner")
        .aws_account_ids("111122223333")
        .actions("SendMessage")
        .send()
        .await
        .expect("AddPermission");
    let policy: Value = serde_json::from_str(&attributes(&s.sqs, &url).await[&QueueAttributeName::Policy])
        .expect("Policy is JSON");
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Sid"], json!("partner"), "{policy}");
    assert_eq!(statement["Action"], json!("SQS:SendMessage"), "{policy}");
    assert_eq!(statement["Principal"]["AWS"], json!("arn:aws:iam::111122223333:root"), "{policy}");
    let again = s
        .sqs
        .add_permission()
        .queue_url(&url)
        .label("partner")
        .aws_account_ids("1")
        .actions("*")
        .send()
        .await;
    assert_eq!(error(again, "a second statement with the same label").0, "InvalidParameterValue");
    s.sqs.remove_permission().queue_url(&url).label("partner").send().await.expect("RemovePermission");
    assert!(!attributes(&s.sqs, &url).await.contains_key(&QueueAttributeName::Policy));
    let gone = s.sqs.remove_permission().queue_url(&url).label("partner").send().await;
    assert_eq!(error(gone, "removing a missing label").0, "InvalidParameterValue");
    let other = sqs_client(&s.broker.url(), &access_key(&s.other, "other").await).await;
    let denied =
        other.add_permission().queue_url(&url).label("x").aws_account_ids("1").actions("*").send().await;
    assert_eq!(error(denied, "AddPermission by another user").0, "AccessDenied");
}

/// SQS's validation rules, codes and wording.
#[tokio::test]
async fn validation_follows_sqs() {
    let s = setup().await;
    let sqs = &s.sqs;
    let url = create(sqs, "strict", &[(QueueAttributeName::MaximumMessageSize, "1024")]).await;
    let send = |body: &str| sqs.send_message().queue_url(&url).message_body(body);
    let (code, msg) = error(send("bad \u{1} char").send().await, "a control character");
    assert_eq!(code, "InvalidMessageContents");
    assert!(msg.contains("#x1") && msg.contains("#x20 to #xD7FF"), "{msg}");
    for (name, dt) in [
        ("AWS.reserved", "String"),
        ("Amazon.x", "String"),
        ("a..b", "String"),
        ("ok", "Text"),
        ("ok", "string"),
    ] {
        let r = send("x")
            .message_attributes(
                name,
                MessageAttributeValue::builder().data_type(dt).string_value("v").build().expect("attr"),
            )
            .send()
            .await;
        assert_eq!(
            error(r, &format!("attribute {name} of type {dt}")).0,
            "InvalidParameterValue",
            "{name} {dt}"
        );
    }
    let mut eleven = send("x");
    for i in 0..11 {
        eleven = eleven.message_attributes(format!("a{i}"), string_attr("v"));
    }
    let (code, msg) = error(eleven.send().await, "11 attributes");
    assert_eq!(code, "InvalidParameterValue");
    assert!(msg.contains("[11]"), "{msg}");
    // Body plus attributes over MaximumMessageSize, though the body alone fits.
    let (code, msg) = error(
        send(&"x".repeat(1000)).message_attributes("pad", string_attr(&"y".repeat(30))).send().await,
        "over the size",
    );
    assert_eq!(code, "InvalidParameterValue");
    assert!(msg.contains("Message must be shorter than 1024 bytes"), "{msg}");
    send(&"x".repeat(900))
        .message_attributes("pad", string_attr("y"))
        .send()
        .await
        .expect("a message within the size");
    // SQS's parameter names, never the native ones.
    let (code, msg) = error(send("x").delay_seconds(901).send().await, "DelaySeconds 901");
    assert_eq!(code, "InvalidParameterValue");
    assert!(msg.contains("DelaySeconds") && !msg.contains("delay_s"), "{msg}");
    let (_, msg) =
        error(sqs.receive_message().queue_url(&url).wait_time_seconds(21).send().await, "WaitTimeSeconds 21");
    assert!(msg.contains("WaitTimeSeconds") && !msg.contains("wait_s"), "{msg}");
    // Batch entry ids.
    let entry = |id: &str, body: &str| {
        SendMessageBatchRequestEntry::builder().id(id).message_body(body).build().expect("entry")
    };
    let batch = |entries: Vec<SendMessageBatchRequestEntry>| {
        sqs.send_message_batch().queue_url(&url).set_entries(Some(entries)).send()
    };
    assert_eq!(error(batch(vec![entry("a.b", "x")]).await, "a dotted id").0, "InvalidBatchEntryId");
    assert_eq!(
        error(batch(vec![entry(&"i".repeat(81), "x")]).await, "an 81-character id").0,
        "InvalidBatchEntryId"
    );
    assert_eq!(
        error(batch(vec![entry("a", "x"), entry("a", "y")]).await, "twice the same id").0,
        "BatchEntryIdsNotDistinct"
    );
    assert_eq!(
        error(batch((0..11).map(|i| entry(&format!("e{i}"), "x")).collect()).await, "11 entries").0,
        "TooManyEntriesInBatchRequest"
    );
    assert_eq!(error(batch(vec![]).await, "no entries").0, "EmptyBatchRequest");
    // One bad entry fails alone.
    let mixed = batch(vec![entry("good", "fine"), entry("bad", "nul \u{0}")])
        .await
        .expect("a batch with one bad entry");
    assert_eq!(mixed.successful.len(), 1, "{mixed:?}");
    assert_eq!(mixed.failed.len(), 1, "{mixed:?}");
    assert_eq!(mixed.failed[0].id, "bad");
    assert_eq!(mixed.failed[0].code, "InvalidMessageContents");
    assert!(mixed.failed[0].sender_fault);
}

/// Message ids are UUIDs through every front door, distinct across queues, and parsed back where
/// an API takes one (seek by id); a malformed one is a 400.
#[tokio::test]
async fn message_ids_are_uuids_everywhere() {
    let s = setup().await;
    let a = s.owner.queue("ids-a");
    a.create(json!({})).await;
    let b = s.owner.queue("ids-b");
    b.create(json!({})).await;
    let id_a = a.send("first").await;
    let id_b = b.send("first").await;
    assert_uuid(&id_a);
    assert_uuid(&id_b);
    assert_ne!(id_a, id_b, "the first messages of two queues");
    let got = a.receive(1).await;
    assert_eq!(got[0].id, id_a);
    // A dedup answer names the first message by the same id.
    let first = a.send_msg(json!({ "body": "once", "dedup_id": "d1" })).await;
    let again = a.send_resp(json!({ "body": "once", "dedup_id": "d1" })).await.expect_status(200);
    assert_eq!(again.json["id"], json!(first));
    // Ids of one queue sort in send order.
    let later = a.send("later").await;
    assert!(first < later && id_a < first, "{id_a} {first} {later}");

    // Topics: publish ids are UUIDs and seek takes them back.
    let topic = s.owner.topic("ids-t");
    topic.create(json!({})).await;
    let sub = topic.subscription("s");
    sub.create(json!({ "start": "earliest" })).await;
    let published = topic.publish_many(&["p0", "p1", "p2"]).await;
    for id in &published {
        assert_uuid(id);
    }
    let drained = sub.drain().await;
    assert_eq!(drained.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), published);
    sub.seek_id(&published[1]).await.expect_status(200);
    let replayed = sub.drain().await;
    assert_eq!(replayed.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["p1", "p2"]);
    sub.seek_id(&published[2].to_uppercase()).await.expect_status(200);
    assert_eq!(sub.drain().await.len(), 1);
    for bad in ["not-an-id", "00000001-0000-4000-8000-000000000001", &id_a] {
        sub.seek_resp(json!({ "id": bad })).await.expect_error(400, "invalid_request");
    }
}

/// gRPC answers the same UUIDs: a message sent over gRPC has the id the native API receives.
#[tokio::test]
async fn grpc_answers_the_same_uuids() {
    use mom_tests::grpc::{body, grpc_broker_with_admin, pb};
    let (broker, _, mut c) = grpc_broker_with_admin().await;
    broker.client().queue("over-grpc").create(json!({})).await;
    let sent = c
        .send(pb::SendRequest { queue: "over-grpc".into(), message: Some(body("hello")) })
        .await
        .unwrap_or_else(|e| panic!("Send: {e:?}"))
        .into_inner();
    assert_uuid(&sent.id);
    let got = broker.client().queue("over-grpc").receive(1).await;
    assert_eq!(got[0].id, sent.id);
    let native = broker.client().queue("over-grpc").send("back").await;
    let received = c
        .receive(pb::ReceiveRequest { queue: "over-grpc".into(), max: Some(1), ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("Receive: {e:?}"))
        .into_inner()
        .messages;
    assert_eq!(received.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), [native]);
}

/// Runs a Python driver of `tests/sqs/` with the endpoint and a key in its environment.
async fn run_driver(script: &str, broker: &Broker, key: &Key, extra: &[(&str, String)]) {
    let python = std::env::var("MOM_PYTHON").unwrap_or_else(|_| "python3".to_string());
    run_driver_with(&python, script, broker, key, extra).await
}

/// [`run_driver`] with the interpreter `python`.
async fn run_driver_with(python: &str, script: &str, broker: &Broker, key: &Key, extra: &[(&str, String)]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sqs").join(script);
    let mut cmd = mom_tests::python::sqs_driver(python, &path, &broker.url(), REGION, &key.id, &key.secret);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = tokio::time::timeout(DRIVER_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {DRIVER_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {python} {}: {e}", path.display()));
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if output.contains("No module named") {
        panic!("a Python module is missing for {python} ({}); .ci/run installs awscli and celery[sqs]:\n{output}", script);
    }
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{output}\n--- broker log:\n{}",
        out.status,
        broker.log_tail(40)
    );
    println!("--- {script} ({:.1} s):\n{output}---", started.elapsed().as_secs_f64());
}

/// The AWS CLI (`aws sqs ...`, awscli 1.46 from PyPI) through every action the endpoint serves.
#[tokio::test]
async fn aws_cli_runs_every_supported_action() {
    let s = setup().await;
    run_driver("awscli_actions.py", &s.broker, &s.key, &[]).await;
}

/// A Celery worker on kombu's SQS transport: tasks end to end, Celery's retry with backoff,
/// kombu's backoff policy (which reads `ApproximateReceiveCount`, asked for as `ALL`), a rejected
/// task reaching the dead-letter queue through RedrivePolicy, and queues made with
/// `sqs-creation-attributes` including ReceiveMessageWaitTimeSeconds.
#[tokio::test]
async fn celery_worker_on_the_sqs_transport() {
    let s = setup().await;
    run_driver("celery_worker.py", &s.broker, &s.key, &[]).await;
}

/// The actions and attributes above over the query protocol, with boto3 1.28.0 / botocore 1.31.0
/// in the virtualenv `.ci/run` makes (`MOM_BOTO3_128_PYTHON`).
#[tokio::test]
async fn the_same_over_the_query_protocol() {
    let python = std::env::var("MOM_BOTO3_128_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/mom-venv-boto3-128/bin/python")
    });
    let s = setup().await;
    run_driver_with(&python, "query_fidelity.py", &s.broker, &s.key, &[]).await;
}
