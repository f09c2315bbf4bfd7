//! The cluster under faults: a node killed (it leaves the cluster view; the leader stays or another
//! takes over), a node drained under a looping client, ZooKeeper down, Redis frozen, and the fault
//! suite proper: three brokers carrying traffic while a broker is killed and restarted, Redis is
//! restarted, ZooKeeper is stopped and started and a node is drained, then a check that no
//! acknowledged message was lost and none came back after its ack.
//!
//! The timing tests use a private ZooKeeper (tickTime 500 ms) and a short session timeout, so how
//! long a dead node stays listed is known closely.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mom_tests::broker::READY_TIMEOUT;
use mom_tests::{
    json, wait_until, wait_until_every, Answer, Body, Broker, BrokerBuilder, Cluster, Failover, Failure,
    GaveUp, Message, Persistence, Queue, RedisServer, Resp, Services, Value, Window, ZooKeeperServer,
};
use reqwest::Method;

/// `MOM_ZK_SESSION_TIMEOUT_MS` of the brokers here (ZooKeeper's minimum is 2 ticks: 1 s here).
const SESSION_TIMEOUT: Duration = Duration::from_millis(4000);

/// Allowance over the session timeout for a dead node's znodes to go and the others to see it:
/// ZooKeeper expires sessions on tick boundaries (500 ms on the private server) and the survivors
/// learn of the deletion through a watch, on a loaded 2-core machine. Measured (20 runs, loaded
/// 2-core machine under stress-ng --cpu 2, 2026-12-07) from the SIGKILL: a node gone from every
/// view, median 4012 ms, p95/max 4385 ms; another leader, median 3803 ms, max 4218 ms.
const EXPIRY_SLACK: Duration = Duration::from_millis(1500);

use mom_tests::util::{timing, PROPAGATION};

/// Time for brokers to find a returned Redis or ZooKeeper again (their reconnect backoff is at
/// most 2 s) and, for ZooKeeper, for the sessions of before the outage to expire.
const RECOVERY: Duration = Duration::from_secs(20);

/// A broker of `cluster` with the id `id` and the short session timeout.
fn node(cluster: &Cluster, id: &str) -> BrokerBuilder {
    cluster.broker().node_id(id).env("MOM_ZK_SESSION_TIMEOUT_MS", SESSION_TIMEOUT.as_millis().to_string())
}

/// Starts every broker at once and waits until all are ready.
async fn start_all(builders: &[BrokerBuilder]) -> Vec<Broker> {
    let mut brokers: Vec<Broker> = builders.iter().cloned().map(BrokerBuilder::spawn).collect();
    for broker in &mut brokers {
        broker.wait_ready(READY_TIMEOUT).await;
    }
    brokers
}

/// Every broker of `nodes` but the one at `index`.
fn all_but(nodes: &[Broker], index: usize) -> Vec<&Broker> {
    nodes.iter().enumerate().filter(|(i, _)| *i != index).map(|(_, n)| n).collect()
}

fn ids_of(brokers: &[&Broker]) -> Vec<String> {
    let mut ids: Vec<String> = brokers.iter().map(|b| b.node_id().to_string()).collect();
    ids.sort();
    ids
}

/// The id of the one broker among `brokers` whose `/metrics` say `mom_leader 1`, or `None` when
/// none does (unreachable brokers count as not leading). Fails the test when several do.
async fn leader_of(brokers: &[&Broker]) -> Option<String> {
    let flags = futures::future::join_all(brokers.iter().map(|b| b.metric("mom_leader"))).await;
    let leaders: Vec<&str> = brokers
        .iter()
        .zip(&flags)
        .filter(|(_, flag)| **flag == Some(1.0))
        .map(|(b, _)| b.node_id())
        .collect();
    assert!(leaders.len() <= 1, "several nodes report mom_leader 1 at once: {leaders:?}");
    leaders.first().map(|id| id.to_string())
}

/// True when every broker lists exactly `brokers` in `/v1/cluster` and names `leader` as leader.
async fn views_agree(brokers: &[&Broker], leader: Option<&str>) -> bool {
    let expected = ids_of(brokers);
    for broker in brokers {
        let (view, ids) = broker.cluster_view().await;
        if ids != expected || leader.is_some_and(|l| view["leader"] != l) {
            return false;
        }
    }
    true
}

/// Waits until every broker lists exactly `brokers` and names as leader the one broker whose
/// `mom_leader` is 1; returns its id.
async fn agreed_leader(brokers: &[&Broker], what: &str, timeout: Duration) -> String {
    wait_until(what, timeout, || async {
        let leader = leader_of(brokers).await?;
        views_agree(brokers, Some(&leader)).await.then_some(leader)
    })
    .await
}

/// Waits until every broker lists exactly `brokers` and names `leader` (within [`PROPAGATION`]),
/// then checks that `leader`, and only it, keeps leading for a second.
async fn settles_on(brokers: &[&Broker], leader: &str, what: &str) {
    let start = Instant::now();
    wait_until(what, PROPAGATION, || async { views_agree(brokers, Some(leader)).await.then_some(()) }).await;
    timing("faults.propagation.views_settle", start.elapsed());
    assert_leader_stays(brokers, leader, Duration::from_secs(1)).await;
}

/// A private ZooKeeper, and brokers with ids `ids` on it (short session timeout), all ready.
async fn on_private_zookeeper(ids: &[&str]) -> (ZooKeeperServer, Vec<BrokerBuilder>, Vec<Broker>) {
    let zk = ZooKeeperServer::started().await;
    let cluster = Cluster::with_zk(zk.connect_string());
    let builders: Vec<BrokerBuilder> = ids.iter().map(|id| node(&cluster, id)).collect();
    let brokers = start_all(&builders).await;
    (zk, builders, brokers)
}

/// Samples `mom_leader` on `brokers` every 50 ms for `span`: always exactly `leader`.
async fn assert_leader_stays(brokers: &[&Broker], leader: &str, span: Duration) {
    let until = Instant::now() + span;
    while Instant::now() < until {
        assert_eq!(leader_of(brokers).await.as_deref(), Some(leader), "leadership moved or lapsed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_killed_node_leaves_the_cluster_within_the_session_timeout_and_the_leader_stays() {
    let (_zk, builders, mut nodes) = on_private_zookeeper(&["node-a", "node-b", "node-c"]).await;
    let all: Vec<&Broker> = nodes.iter().collect();
    let leader = agreed_leader(&all, "one node to lead", SESSION_TIMEOUT).await;
    drop(all);

    let victim = nodes.iter().position(|n| n.node_id() != leader).expect("a node that does not lead");
    let victim_id = nodes[victim].node_id().to_string();
    let killed = Instant::now();
    nodes[victim].sigkill();
    let survivors = all_but(&nodes, victim);
    wait_until(
        &format!("{victim_id} to leave the cluster view of every survivor"),
        SESSION_TIMEOUT + EXPIRY_SLACK,
        || async {
            // Another node's death leaves the leader alone.
            assert_eq!(leader_of(&survivors).await.as_deref(), Some(leader.as_str()));
            views_agree(&survivors, Some(&leader)).await.then_some(())
        },
    )
    .await;
    timing("faults.killed_node_left_the_view_after_sigkill", killed.elapsed());
    drop(survivors);

    // Restarted under the same id, it is listed again, and it does not take the lead.
    nodes[victim] = builders[victim].clone().start().await;
    let all: Vec<&Broker> = nodes.iter().collect();
    settles_on(&all, &leader, "the restarted node to be listed by every node").await;
}

#[tokio::test]
async fn exactly_one_node_leads_and_another_takes_over_when_the_leader_is_killed() {
    let (_zk, _, mut nodes) = on_private_zookeeper(&["lead-a", "lead-b", "lead-c"]).await;
    let all: Vec<&Broker> = nodes.iter().collect();
    let first = agreed_leader(&all, "one node to lead", SESSION_TIMEOUT).await;
    // Not a lucky sample: the one leader, and only it, over a second.
    assert_leader_stays(&all, &first, Duration::from_secs(1)).await;
    drop(all);

    let victim = nodes.iter().position(|n| n.node_id() == first).expect("the leader is one of the nodes");
    let killed = Instant::now();
    nodes[victim].sigkill();
    let survivors = all_but(&nodes, victim);
    // Every sample on the way: at most one leader (leader_of fails the test otherwise).
    let next = wait_until_every(
        "another node to take over",
        SESSION_TIMEOUT + EXPIRY_SLACK,
        Duration::from_millis(50),
        || leader_of(&survivors),
    )
    .await;
    let took = killed.elapsed();
    timing("faults.leader_takeover_after_sigkill", took);
    assert_ne!(next, first);
    settles_on(&survivors, &next, "the survivors to list themselves and the new leader").await;
}

#[tokio::test]
async fn a_paused_old_leader_does_not_redo_what_a_newer_leader_undid_while_it_slept() {
    let zk = ZooKeeperServer::started().await;
    let cluster = Cluster::with_zk(zk.connect_string());
    let nodes = start_all(&[node(&cluster, "fence-a"), node(&cluster, "fence-b")]).await;
    let all: Vec<&Broker> = nodes.iter().collect();
    let first = agreed_leader(&all, "one node to lead", SESSION_TIMEOUT).await;
    let old = nodes.iter().position(|n| n.node_id() == first).expect("the leader is one of the nodes");
    let new = 1 - old;
    let topic = nodes[new].client().topic("news");
    topic.create(json!({})).await;
    topic.subscription("gone").create(json!({})).await;
    // The old leader's cache knows the subscription: its sweep would re-register it in Redis
    // were it missing there (what a node that died between the two writes of a create leaves).
    let on_old = nodes[old].client().topic("news");
    let old_lists_it = || async { on_old.subscriptions().await.iter().any(|s| s["name"] == "gone") };
    wait_until("the leader to see the subscription", PROPAGATION, || async {
        old_lists_it().await.then_some(())
    })
    .await;

    let (url, prefix) = (&cluster.redis_url, &cluster.redis_prefix);
    // The old leader's sweeps (every 5 s) have put its token in the fence.
    let old_token = wait_until("the old leader's token in the fence", RECOVERY, || {
        mom_tests::layout::leader_fence(url, prefix)
    })
    .await;

    // Paused past its session: the other node leads, and the subscription is deleted there
    // while the old leader still believes in it.
    mom_tests::broker::signal(nodes[old].pid(), libc::SIGSTOP);
    let paused = Instant::now();
    let successor = [&nodes[new]];
    let next =
        wait_until("the other node to take over", SESSION_TIMEOUT + EXPIRY_SLACK + PROPAGATION, || {
            leader_of(&successor)
        })
        .await;
    assert_eq!(next, nodes[new].node_id());
    nodes[new].client().topic("news").subscription("gone").delete().await.expect_status(204);
    // The newer leader acts before the old one wakes (its token becomes the newest that did): its
    // sweep finishes a dead-letter move a crash left half done, seen when the dead letter arrives.
    let dlq = nodes[new].client().queue("dlq");
    dlq.create(json!({})).await;
    nodes[new]
        .client()
        .queue("source")
        .create(json!({ "max_receives": 1, "dead_letter_queue": "dlq" }))
        .await;
    mom_tests::layout::leave_in_outbox(url, prefix, "source", "crashed-1", "dlq", r#"{"b":"moved"}"#).await;
    let moved = wait_until("the new leader's sweep to finish the move", RECOVERY, || async {
        let got = dlq.receive(10).await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    let new_token = mom_tests::layout::leader_fence(url, prefix).await;
    assert!(
        new_token > Some(old_token),
        "the new leader's sweep left {new_token:?} in the fence, not above the old leader's {old_token}"
    );
    mom_tests::broker::signal(nodes[old].pid(), libc::SIGCONT);
    eprintln!("{first} paused {:?}, past its session; {next} leads", paused.elapsed());

    // Awake, the old node's overdue sweep runs at once with its stale cache; its writes are
    // refused (its session is gone, and a newer token acted). It catches up and does not lead.
    wait_until("the old leader to see the deletion", RECOVERY, || async {
        (!old_lists_it().await).then_some(())
    })
    .await;
    // Which of the two refuses is a race on waking: in 6 of 7 runs (Dec 2026, loaded 2-core
    // machine) the old node saw its session gone before its sweep asked the fence, in 1 the fence
    // refused it. So this test shows the outcome, not the fence at work; the next test shows the
    // fence alone refusing.
    let fenced_off = nodes[old].metric("mom_leader_fenced_off_total").await;
    eprintln!("{first} woke; refusals by the fence while it believed it led: {fenced_off:?}");
    assert_eq!(mom_tests::layout::leader_fence(url, prefix).await, new_token, "the fence went back");
    assert_leader_stays(&all, &next, Duration::from_secs(1)).await;

    // Nothing was re-registered: a message published now reaches no subscription, and a
    // subscription made again under the name starts empty.
    let published = topic.publish("after").await;
    let again = nodes[old].client().topic("news").subscription("gone");
    again.create(json!({})).await;
    let got = again.receive(10).await;
    assert!(
        got.is_empty(),
        "a deleted subscription was re-registered by the old leader: got {got:?} ({published})"
    );
    topic.publish("later").await;
    let got = again.receive(10).await;
    assert_eq!(got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["later"]);
    // And the move the newer leader finished was made once.
    assert_eq!(moved.len(), 1, "{moved:?}");
    dlq.ack_all(&moved).await;
    assert_eq!(dlq.stats().await.counts(), (0, 0, 0), "the dead-letter move was made twice");
}

/// The fence alone refuses a leader a newer one has passed. The node leads (a live session, the
/// lowest candidate: its own check passes) while the fence in Redis holds a newer token, as a newer
/// leader that acted while this one was paused leaves it. Its sweep asks the fence, is refused
/// (counted) and leaves a half-done dead-letter move alone; once the fence holds its own token
/// again, the same sweep finishes the move.
#[tokio::test]
async fn the_redis_fence_alone_stops_a_leader_whose_token_a_newer_leader_passed() {
    let cluster = Cluster::new();
    let broker = cluster.start_broker().await;
    let (url, prefix) = (&cluster.redis_url, &cluster.redis_prefix);
    let leading = [&broker];
    agreed_leader(&leading, "the node to lead", RECOVERY).await;
    // Its first sweep (every 5 s) records its token in the fence.
    let token = wait_until("the leader's token in the fence", RECOVERY, || {
        mom_tests::layout::leader_fence(url, prefix)
    })
    .await;
    mom_tests::layout::set_leader_fence(url, prefix, token + 1).await;

    let dlq = broker.client().queue("dlq");
    dlq.create(json!({})).await;
    broker.client().queue("source").create(json!({ "max_receives": 1, "dead_letter_queue": "dlq" })).await;
    mom_tests::layout::leave_in_outbox(url, prefix, "source", "crashed-1", "dlq", r#"{"b":"moved"}"#).await;
    let fenced_off = || async { broker.metric("mom_leader_fenced_off_total").await.unwrap_or(0.0) };
    let before = fenced_off().await;
    wait_until("a sweep to be fenced off", RECOVERY, || async {
        (fenced_off().await > before).then_some(())
    })
    .await;
    assert_eq!(leader_of(&leading).await.as_deref(), Some(broker.node_id()), "the node stopped leading");
    assert!(dlq.receive(10).await.is_empty(), "a leader behind the fence finished the move");
    assert_eq!(mom_tests::layout::leader_fence(url, prefix).await, Some(token + 1), "the fence went back");

    // The newer token gone, the same leader's sweep does the work.
    mom_tests::layout::set_leader_fence(url, prefix, token).await;
    let moved = wait_until("the sweep to finish the move", RECOVERY, || async {
        let got = dlq.receive(10).await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(moved.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["moved"]);
}

/// What the looping client of the drain test saw.
#[derive(Default)]
struct LoopLog {
    /// Completed send → receive → ack rounds, with the node that answered each request.
    rounds: Vec<[usize; 3]>,
    /// Requests answered by node 0 (the drained one), with when.
    answers_by_drained: Vec<Instant>,
    sent: HashSet<String>,
    received: HashSet<String>,
    /// Connection errors retried on the other node.
    retried: usize,
    /// Acks answered `receipt_invalid` after a retry: the failed attempt may have done them.
    acks_perhaps_done: usize,
    /// Any answer that is not a success.
    failed: Vec<String>,
}

impl LoopLog {
    /// Records one answer; `None` (and a failure) unless it is a 2xx.
    fn check(&mut self, what: &str, result: Result<Answer, GaveUp>) -> Option<Answer> {
        match result {
            Ok(answer) => {
                self.retried += answer.failures.len();
                if answer.node == 0 {
                    self.answers_by_drained.push(Instant::now());
                }
                if (200..300).contains(&answer.resp.status) {
                    Some(answer)
                } else {
                    self.failed.push(format!("{what}: {}", answer.resp));
                    None
                }
            }
            Err(gave_up) => {
                self.failed.push(format!("{what}: {gave_up}"));
                None
            }
        }
    }
}

fn messages_of(resp: &Resp) -> Vec<Message> {
    serde_json::from_value(resp.json["messages"].clone())
        .unwrap_or_else(|e| panic!("bad messages ({e}) in {resp}"))
}

/// What the ack of one receipt tells a client that retries failed acks on another node.
#[derive(Debug)]
enum AckResult {
    /// `{"ok": true}`: acknowledged now.
    Done,
    /// `receipt_invalid` after a retry: perhaps the attempt that failed acknowledged it; if not,
    /// the message comes back (a duplicate, not a loss).
    PerhapsDoneBefore,
    /// `receipt_invalid` at the first attempt: the visibility timeout had passed.
    Stale,
    Unexpected(String),
}

/// One [`AckResult`] per receipt of a 200 answer to an ack of `receipts` receipts.
fn ack_results(answer: &Answer, receipts: usize) -> Vec<AckResult> {
    let results = answer.resp.json["results"].as_array();
    let results = match results.filter(|r| r.len() == receipts) {
        Some(results) => results,
        None => {
            let what = format!("not one result per receipt in {}", answer.resp);
            return (0..receipts).map(|_| AckResult::Unexpected(what.clone())).collect();
        }
    };
    results
        .iter()
        .map(|result| {
            if result == &json!({ "ok": true }) {
                AckResult::Done
            } else if result["error"]["code"] != "receipt_invalid" {
                AckResult::Unexpected(format!("{result} in {}", answer.resp))
            } else if answer.retried() {
                AckResult::PerhapsDoneBefore
            } else {
                AckResult::Stale
            }
        })
        .collect()
}

/// send → receive → ack in a loop through `nodes`, node 0 first, until `stop`.
async fn send_receive_ack_loop(
    nodes: Failover,
    queue: String,
    log: Arc<Mutex<LoopLog>>,
    stop: Arc<AtomicBool>,
) {
    let path = |suffix: &str| format!("/v1/queues/{queue}{suffix}");
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = format!("m{n}");
        let send = nodes.post(0, &path("/messages"), json!({ "body": body, "dedup_id": body })).await;
        let Some(send) = log.lock().unwrap().check("send", send) else {
            continue;
        };
        let id = send.resp.json["id"].as_str().unwrap_or_default().to_string();
        log.lock().unwrap().sent.insert(id);

        let receive = nodes.post(0, &path("/receive"), json!({ "max": 10, "wait_s": 1 })).await;
        let Some(receive) = log.lock().unwrap().check("receive", receive) else {
            continue;
        };
        let got = messages_of(&receive.resp);
        if got.is_empty() {
            continue;
        }
        let receipts: Vec<&str> = got.iter().map(|m| m.receipt.as_str()).collect();
        let ack = nodes.post(0, &path("/ack"), json!({ "receipts": receipts })).await;
        let mut log = log.lock().unwrap();
        log.received.extend(got.iter().map(|m| m.id.clone()));
        let Some(ack) = log.check("ack", ack) else {
            continue;
        };
        for (m, result) in got.iter().zip(ack_results(&ack, got.len())) {
            match result {
                AckResult::Done => {}
                AckResult::PerhapsDoneBefore => log.acks_perhaps_done += 1,
                other => log.failed.push(format!("ack of {}: {other:?}", m.id)),
            }
        }
        log.rounds.push([send.node, receive.node, ack.node]);
    }
}

/// Long polls on an empty queue through `nodes`, node 0 first, until `stop`: held polls must be
/// answered (200, empty) when node 0 drains.
async fn long_poll_loop(nodes: Failover, queue: String, log: Arc<Mutex<LoopLog>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let poll = nodes.post(0, &format!("/v1/queues/{queue}/receive"), json!({ "wait_s": 2 })).await;
        log.lock().unwrap().check("long poll", poll);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_looping_against_a_drained_node_sees_no_failed_request_when_it_retries_elsewhere() {
    const DRAIN_TIMEOUT_S: u64 = 5;
    let cluster = Cluster::new();
    let mut drained = cluster.broker().node_id("drained").drain_timeout_s(DRAIN_TIMEOUT_S).start().await;
    let other = cluster.broker().node_id("other").start().await;
    for name in ["loop", "idle"] {
        drained.client().queue(name).create(json!({ "visibility_timeout_s": 5 })).await;
        let on_other = other.client().queue(name);
        wait_until("the queue to reach the other node", PROPAGATION, || async {
            (on_other.get().await.status == 200).then_some(())
        })
        .await;
    }

    // Connection errors only: a 503 or a timeout would be a failed request.
    let nodes = Failover::new([
        drained.client().with_timeout(Duration::from_secs(10)),
        other.client().with_timeout(Duration::from_secs(10)),
    ]);
    let log = Arc::new(Mutex::new(LoopLog::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let looping = tokio::spawn(send_receive_ack_loop(
        nodes.clone(),
        "loop".into(),
        Arc::clone(&log),
        Arc::clone(&stop),
    ));
    let polls = Arc::new(Mutex::new(LoopLog::default()));
    let polling =
        tokio::spawn(long_poll_loop(nodes.clone(), "idle".into(), Arc::clone(&polls), Arc::clone(&stop)));
    let rounds_on = |node: usize| {
        let log = log.lock().unwrap();
        log.rounds.iter().filter(|r| r.iter().all(|n| *n == node)).count()
    };
    wait_until("rounds on the node to drain", Duration::from_secs(10), || async {
        (rounds_on(0) >= 5).then_some(())
    })
    .await;

    let term = Instant::now();
    drained.sigterm();
    let status = drained.wait_exit(Duration::from_secs(DRAIN_TIMEOUT_S + 2)).await;
    assert!(status.success(), "drained broker exited with {status}");
    let exited = term.elapsed();
    let before = rounds_on(1);
    wait_until("rounds on the other node", Duration::from_secs(10), || async {
        (rounds_on(1) >= before + 5).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    looping.await.expect("client loop");
    polling.await.expect("long poll loop");

    let log = log.lock().unwrap();
    let polls = polls.lock().unwrap();
    let after_term = |log: &LoopLog| log.answers_by_drained.iter().filter(|t| **t > term).count();
    let served_while_draining = after_term(&log);
    eprintln!(
        "drain: exited {exited:?} after SIGTERM; {} rounds, {served_while_draining} of their requests \
         answered by the draining node after SIGTERM, {} long polls answered by it after SIGTERM, \
         {} connection errors retried, {} retried acks perhaps done before",
        log.rounds.len(),
        after_term(&polls),
        log.retried + polls.retried,
        log.acks_perhaps_done
    );
    assert!(log.failed.is_empty(), "failed requests: {:#?}", log.failed);
    assert!(polls.failed.is_empty(), "failed long polls: {:#?}", polls.failed);
    assert!(
        served_while_draining > 0,
        "the draining node answered nothing after SIGTERM: the drain was not exercised"
    );
    assert!(log.retried > 0, "no connection error was retried: the node never went away?");
    let lost: Vec<&String> = log.sent.difference(&log.received).collect();
    assert!(lost.is_empty(), "sent but never received: {lost:?}");
}

/// Sends `body` through `from`, receives it through `to`, acks it through `from`.
async fn pass_message(from: &Queue, to: &Queue, body: &str) {
    let id = from.send(body).await;
    let got = to.receive_n(1, Duration::from_secs(5)).await;
    assert_eq!((got[0].id.as_str(), got[0].body.as_str()), (id.as_str(), body));
    from.ack_all(&got).await;
}

#[tokio::test]
async fn with_zookeeper_down_messages_flow_metadata_writes_answer_503_and_all_recovers_without_restart() {
    let (mut zk, _, nodes) = on_private_zookeeper(&["zk-a", "zk-b"]).await;
    let all: Vec<&Broker> = nodes.iter().collect();
    let (a, b) = (&nodes[0], &nodes[1]);
    // A metadata write may wait for ZooKeeper's 5 s operation timeout, not longer.
    let (ca, cb) =
        (a.client().with_timeout(Duration::from_secs(20)), b.client().with_timeout(Duration::from_secs(20)));
    let (qa, qb) = (ca.queue("steady"), cb.queue("steady"));
    qa.create(json!({ "visibility_timeout_s": 5 })).await;
    ca.queue("kept").create(json!({})).await;
    let kept = ca.queue("kept").send("must survive").await;
    wait_until("the queues to reach the other node", PROPAGATION, || async {
        let known = cb.queue("kept").get().await.status == 200 && qb.get().await.status == 200;
        known.then_some(())
    })
    .await;
    agreed_leader(&all, "the nodes to list each other and agree on a leader", RECOVERY).await;

    zk.kill();
    let down = Instant::now();
    // The data path runs from the cached metadata, across nodes.
    pass_message(&qa, &qb, "during 1").await;
    pass_message(&qb, &qa, "during 2").await;
    for broker in &all {
        assert_eq!(
            broker.probe("/readyz").await,
            Some(200),
            "{} unready without ZooKeeper",
            broker.node_id()
        );
    }
    // Metadata writes need ZooKeeper: 503, in bounded time, on every node.
    let writes: [(Method, &str, Value); 4] = [
        (Method::PUT, "/v1/queues/created-during-outage", json!({})),
        (Method::PATCH, "/v1/queues/steady", json!({ "visibility_timeout_s": 9 })),
        (Method::DELETE, "/v1/queues/kept", Value::Null),
        (Method::POST, "/v1/users", json!({ "username": "late", "password": "a-long-enough-password" })),
    ];
    for client in [&ca, &cb] {
        for (method, path, body) in &writes {
            let body = if body.is_null() { Body::None } else { Body::Json(body.clone()) };
            let (resp, took) = Window::around(client.request(method.clone(), path, body)).await;
            resp.expect_error(503, "unavailable");
            let took = took.end - took.start;
            timing("faults.metadata_write_503_with_zookeeper_down", took);
            // ZooKeeper's 5 s operation timeout at most. Measured (20 runs x 8, loaded 2-core
            // machine under stress-ng --cpu 2, 2026-12-07): median 2 ms, p95 125 ms, max 207 ms.
            assert!(took < Duration::from_secs(6), "{method} {path} took {took:?} to answer 503");
        }
    }
    // An outage longer than the session timeout: the brokers' sessions can expire meanwhile, so
    // they must recover from that too. The passing time is the point here.
    tokio::time::sleep((down + SESSION_TIMEOUT * 3 / 2).saturating_duration_since(Instant::now())).await;
    pass_message(&qa, &qb, "during 3").await;

    zk.start().await;
    let back = Instant::now();
    wait_until("a metadata write to succeed again", RECOVERY, || async {
        (ca.queue("after-outage").create_resp(json!({})).await.status == 201).then_some(())
    })
    .await;
    let writable = back.elapsed();
    let written = Instant::now();
    wait_until("the write to reach the other node", PROPAGATION, || async {
        (cb.queue("after-outage").get().await.status == 200).then_some(())
    })
    .await;
    timing("faults.propagation.write_after_zookeeper_outage", written.elapsed());
    let leader = agreed_leader(&all, "both nodes listed again, and one leader", RECOVERY).await;
    eprintln!(
        "ZooKeeper back after {:?} down: metadata writable after {writable:?}, nodes listed and \
         {leader} leading after {:?}",
        back - down,
        back.elapsed()
    );
    // The refused writes did nothing, and messages still flow.
    for client in [&ca, &cb] {
        client.queue("created-during-outage").get().await.expect_error(404, "queue_not_found");
        assert_eq!(client.queue("steady").get().await.expect_status(200).json["visibility_timeout_s"], 5);
        let users = client.get("/v1/users").await.expect_status(200);
        assert!(
            !users.json["users"].as_array().into_iter().flatten().any(|u| u["username"] == "late"),
            "a user created while ZooKeeper was down: {users}"
        );
    }
    let got = cb.queue("kept").receive(10).await;
    assert_eq!(got.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), [kept.as_str()]);
    pass_message(&qb, &qa, "after").await;
}

/// `MOM_REDIS_TIMEOUT_MS` of the Redis test.
const REDIS_TIMEOUT: Duration = Duration::from_millis(1000);

/// Allowance over the Redis timeout for a request to answer 503. Measured (20 runs x 5 requests,
/// loaded 2-core machine under stress-ng --cpu 2, 2026-12-07): median 1008 ms, p95 1033 ms, max
/// 1160 ms; `/readyz` 503 after them, median 6 ms, max 57 ms.
const ANSWER_SLACK: Duration = Duration::from_millis(1000);

#[tokio::test]
async fn with_redis_frozen_requests_answer_503_within_the_redis_timeout_and_the_node_recovers() {
    let redis = RedisServer::started(Persistence::AppendFsyncAlways).await;
    let mut broker = Cluster::with_redis(redis.url())
        .broker()
        .env("MOM_REDIS_TIMEOUT_MS", REDIS_TIMEOUT.as_millis().to_string())
        .start()
        .await;
    let client = broker.client().with_timeout(Duration::from_secs(30));
    let queue = client.queue("frozen");
    queue.create(json!({ "visibility_timeout_s": 2 })).await;
    queue.send("probe").await;
    let probe = queue.receive(1).await;
    let before = queue.send("before").await;

    // A frozen Redis accepts connections and answers nothing: only the timeout saves a request.
    redis.pause();
    let requests: [(&str, Method, String, Value); 5] = [
        ("receive", Method::POST, queue.path("/receive"), json!({ "max": 10 })),
        ("long poll", Method::POST, queue.path("/receive"), json!({ "max": 10, "wait_s": 10 })),
        ("ack", Method::POST, queue.path("/ack"), json!({ "receipts": [probe[0].receipt] })),
        ("stats", Method::GET, queue.path(""), Value::Null),
        ("send", Method::POST, queue.path("/messages"), json!({ "body": "during", "dedup_id": "during" })),
    ];
    // Checked at the end, so that a slow answer does not hide whether the node recovers.
    let mut slow = Vec::new();
    for (what, method, path, body) in requests {
        let body = if body.is_null() { Body::None } else { Body::Json(body) };
        let (resp, window) = Window::around(client.request(method, &path, body)).await;
        let took = window.end - window.start;
        eprintln!("{what} with Redis frozen: {} after {took:?}", resp.status);
        timing("faults.request_503_with_redis_frozen", took);
        resp.expect_error(503, "unavailable");
        if took > REDIS_TIMEOUT + ANSWER_SLACK {
            slow.push(format!("{what} answered 503 after {took:?}"));
        }
    }
    // The health check runs every second and gives up after the Redis timeout.
    let probing = Instant::now();
    broker.wait_probe("/readyz", 503, Duration::from_secs(1) + REDIS_TIMEOUT + ANSWER_SLACK).await;
    timing("faults.readyz_503_with_redis_frozen", probing.elapsed());
    assert_eq!(broker.probe("/healthz").await, Some(200));

    redis.resume();
    let resumed = Instant::now();
    broker.wait_ready(RECOVERY).await;
    eprintln!("ready again {:?} after Redis resumed", resumed.elapsed());
    // The send that answered 503 may have been stored when Redis caught up on its queued
    // commands; the same dedup_id makes its retry safe.
    let during = queue.send_resp(json!({ "body": "during", "dedup_id": "during" })).await;
    assert!(matches!(during.status, 200 | 201), "{during}");
    let during = during.json["id"].as_str().unwrap_or_default().to_string();
    let after = queue.send("after").await;

    // Everything comes through, each message under one id. The probe may come back (its ack
    // answered 503, so perhaps it was never applied) and so may a message a frozen receive took.
    let mut seen: HashMap<String, String> = HashMap::new();
    let deadline = Instant::now() + RECOVERY;
    loop {
        let got = queue.receive_with(json!({ "max": 10, "wait_s": 1 })).await;
        if !got.is_empty() {
            queue.ack_all(&got).await;
        }
        for m in got {
            if let Some(other) = seen.insert(m.body.clone(), m.id.clone()) {
                assert_eq!(other, m.id, "{} stored twice", m.body);
            }
        }
        let complete = ["before", "during", "after"].iter().all(|b| seen.contains_key(*b));
        if complete && queue.stats().await.counts() == (0, 0, 0) {
            break;
        }
        assert!(Instant::now() < deadline, "not everything came through after Redis resumed: {seen:?}");
    }
    assert_eq!(seen["before"], before);
    assert_eq!(seen["during"], during);
    assert_eq!(seen["after"], after);
    let mut bodies: Vec<&str> = seen.keys().map(String::as_str).collect();
    bodies.sort_unstable();
    assert!(
        bodies == ["after", "before", "during"] || bodies == ["after", "before", "during", "probe"],
        "{bodies:?}"
    );
    assert!(
        slow.is_empty(),
        "with Redis frozen, requests took longer than the Redis timeout ({REDIS_TIMEOUT:?}) plus \
         {ANSWER_SLACK:?} to answer: {slow:#?}"
    );
}

// ------------------------------------------------------------------------------------------------
// The fault suite.

/// Producers and consumers of the suite, each; all three nodes are used by each.
const CLIENTS: usize = 3;

/// Sends acknowledged and acks answered ok that count as "traffic flows" after a fault.
const PROGRESS: usize = 20;

/// One message as a receive returned it.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    body: String,
    receive_count: u64,
}

/// Everything the suite's clients saw.
#[derive(Default)]
struct Ledger {
    /// body → id of every send that was acknowledged (201, or 200 for a retried dedup hit).
    sent: HashMap<String, String>,
    /// Bodies whose send was never acknowledged: their fate is unknown.
    unconfirmed: Vec<String>,
    deliveries: Vec<Delivery>,
    /// id → receive_count of the delivery whose ack answered ok.
    acked: HashMap<String, u64>,
    /// Acks answered `receipt_invalid` after a retry: perhaps the failed attempt did them.
    acks_perhaps_done: usize,
    /// Acks answered `receipt_invalid` at the first attempt: the visibility timeout had passed.
    acks_stale: usize,
    /// Receives that got no answer anywhere (their messages come back after the visibility timeout).
    receives_given_up: usize,
    retried_connection: usize,
    retried_unavailable: usize,
    retried_timeout: usize,
    /// Answers no fault explains.
    unexpected: Vec<String>,
}

impl Ledger {
    fn count(&mut self, answer: &Answer) {
        for failure in &answer.failures {
            match failure {
                Failure::Connection { .. } => self.retried_connection += 1,
                Failure::Unavailable { .. } => self.retried_unavailable += 1,
                Failure::Timeout { .. } => self.retried_timeout += 1,
            }
        }
    }

    /// (acknowledged sends, acks answered ok).
    fn progress(&self) -> (usize, usize) {
        (self.sent.len(), self.acked.len())
    }
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(ledger: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends `p<k>-<n>` with that as its dedup_id, one after another, starting each on the next node.
async fn produce(k: usize, nodes: Failover, path: String, ledger: Shared, stop: Arc<AtomicBool>) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = format!("p{k}-{n}");
        let result = nodes.post(k + n, &path, json!({ "body": body, "dedup_id": body })).await;
        let mut book = lock(&ledger);
        match result {
            Ok(answer) => {
                book.count(&answer);
                let status = answer.resp.status;
                let id = answer.resp.json["id"].as_str().unwrap_or_default().to_string();
                if (status == 201 || (status == 200 && answer.retried())) && !id.is_empty() {
                    book.sent.insert(body, id);
                } else {
                    book.unconfirmed.push(body);
                    book.unexpected.push(format!("send: {}", answer.resp));
                }
            }
            Err(gave_up) => {
                eprintln!("send of {body}: {gave_up}");
                book.unconfirmed.push(body);
            }
        }
    }
}

/// Receives (long polls of 1 s) and acks what it got through the next node, until `stop`.
async fn consume(k: usize, nodes: Failover, queue: String, ledger: Shared, stop: Arc<AtomicBool>) {
    let mut n = k;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let receive = nodes.post(n, &format!("{queue}/receive"), json!({ "max": 10, "wait_s": 1 })).await;
        let got = match receive {
            Ok(answer) if answer.resp.status == 200 => {
                let got = messages_of(&answer.resp);
                let mut book = lock(&ledger);
                book.count(&answer);
                book.deliveries.extend(got.iter().map(|m| Delivery {
                    id: m.id.clone(),
                    body: m.body.clone(),
                    receive_count: m.receive_count,
                }));
                got
            }
            Ok(answer) => {
                lock(&ledger).unexpected.push(format!("receive: {}", answer.resp));
                continue;
            }
            Err(gave_up) => {
                eprintln!("receive: {gave_up}");
                lock(&ledger).receives_given_up += 1;
                continue;
            }
        };
        if got.is_empty() {
            continue;
        }
        let receipts: Vec<&str> = got.iter().map(|m| m.receipt.as_str()).collect();
        let ack = nodes.post(n + 1, &format!("{queue}/ack"), json!({ "receipts": receipts })).await;
        let mut book = lock(&ledger);
        let answer = match ack {
            Ok(answer) if answer.resp.status == 200 => answer,
            Ok(answer) => {
                book.unexpected.push(format!("ack: {}", answer.resp));
                continue;
            }
            // Unacked: the messages come back after the visibility timeout.
            Err(gave_up) => {
                eprintln!("ack: {gave_up}");
                continue;
            }
        };
        book.count(&answer);
        for (m, result) in got.iter().zip(ack_results(&answer, got.len())) {
            match result {
                AckResult::Done => {
                    let rc = book.acked.entry(m.id.clone()).or_insert(m.receive_count);
                    *rc = (*rc).min(m.receive_count);
                }
                AckResult::PerhapsDoneBefore => book.acks_perhaps_done += 1,
                AckResult::Stale => book.acks_stale += 1,
                AckResult::Unexpected(what) => book.unexpected.push(format!("ack of {}: {what}", m.id)),
            }
        }
    }
}

/// Waits until `PROGRESS` more sends were acknowledged and as many more acks answered ok.
async fn traffic_flows(ledger: &Shared, phase: &str) {
    let (sent, acked) = lock(ledger).progress();
    wait_until(&format!("traffic to flow {phase}"), Duration::from_secs(30), || async {
        let (s, a) = lock(ledger).progress();
        (s >= sent + PROGRESS && a >= acked + PROGRESS).then_some(())
    })
    .await;
}

/// Like [`traffic_flows`], again and again until `at_least` has passed: traffic flows throughout.
async fn traffic_flows_for(ledger: &Shared, phase: &str, at_least: Duration) {
    let start = Instant::now();
    while start.elapsed() < at_least {
        traffic_flows(ledger, phase).await;
    }
}

/// The `stats` counts of the queue at `path` through any node, if one answers.
async fn queue_counts(nodes: &Failover, path: &str) -> Option<(u64, u64, u64)> {
    let answer = nodes.get(0, path).await.ok()?;
    let stats: mom_tests::Stats = serde_json::from_value(answer.resp.json["stats"].clone()).ok()?;
    Some(stats.counts())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_suite_loses_no_acknowledged_message() {
    let started = Instant::now();
    let phase = |what: &str| eprintln!("[{:>7.1?}] {what}", started.elapsed());
    let mut redis = RedisServer::started(Persistence::AppendFsyncAlways).await;
    let mut zk = ZooKeeperServer::started().await;
    let cluster = Cluster::with_services(Services { redis_url: redis.url(), zk: zk.connect_string() });
    let builders: Vec<BrokerBuilder> = ["node-1", "node-2", "node-3"]
        .iter()
        .map(|id| {
            node(&cluster, id)
                .drain_timeout_s(5)
                .env("MOM_REDIS_TIMEOUT_MS", "1000")
                // Six clients as one user would meet the per-user rate limit, which is not under test.
                .env("MOM_RATE_LIMIT_RPS", "0")
        })
        .collect();
    let mut nodes = start_all(&builders).await;
    phase("three brokers ready");
    let queue = "/v1/queues/faults".to_string();
    nodes[0].client().put(&queue, json!({ "visibility_timeout_s": 5 })).await.expect_status(201);
    for broker in &nodes {
        let client = broker.client();
        wait_until("the queue to reach every node", PROPAGATION, || async {
            (client.get(&queue).await.status == 200).then_some(())
        })
        .await;
    }

    let failover = Failover::new(nodes.iter().map(|b| b.client().with_timeout(Duration::from_secs(10))))
        .retrying_unavailable();
    let ledger: Shared = Arc::default();
    let stop_producers = Arc::new(AtomicBool::new(false));
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let mut producers = Vec::new();
    let mut consumers = Vec::new();
    for k in 0..CLIENTS {
        producers.push(tokio::spawn(produce(
            k,
            failover.clone(),
            format!("{queue}/messages"),
            Arc::clone(&ledger),
            Arc::clone(&stop_producers),
        )));
        consumers.push(tokio::spawn(consume(
            k,
            failover.clone(),
            queue.clone(),
            Arc::clone(&ledger),
            Arc::clone(&stop_consumers),
        )));
    }
    traffic_flows(&ledger, "at the start").await;

    phase("kill -9 node-2");
    nodes[1].sigkill();
    let survivors = all_but(&nodes, 1);
    // Dead until ZooKeeper drops it, with the clients working on meanwhile.
    let dead = Instant::now();
    while !views_agree(&survivors, None).await {
        assert!(dead.elapsed() < RECOVERY, "node-2 is still listed {:?} after its death", dead.elapsed());
        traffic_flows(&ledger, "with node-2 dead").await;
    }
    timing("faults.suite_killed_node_left_the_view", dead.elapsed());
    drop(survivors);
    phase("node-2 left the cluster; restart it");
    nodes[1] = builders[1].clone().start().await;
    failover.set(1, nodes[1].client().with_timeout(Duration::from_secs(10)));
    traffic_flows(&ledger, "after node-2 restarted").await;

    phase("restart Redis (kill -9, AOF with fsync always)");
    redis.restart().await;
    for broker in &mut nodes {
        broker.wait_probe("/readyz", 200, RECOVERY).await;
    }
    traffic_flows(&ledger, "after Redis restarted").await;

    phase("stop ZooKeeper");
    zk.kill();
    // Down long enough for the brokers' sessions to expire: what they must come back from.
    traffic_flows_for(&ledger, "with ZooKeeper down", SESSION_TIMEOUT * 3 / 2).await;
    phase("start ZooKeeper");
    zk.start().await;
    let all: Vec<&Broker> = nodes.iter().collect();
    agreed_leader(&all, "every node to list all three again, and one leader", RECOVERY).await;
    drop(all);
    phase("all three listed again, one leader");
    traffic_flows(&ledger, "after ZooKeeper returned").await;

    phase("SIGTERM node-3");
    nodes[2].sigterm();
    let status = nodes[2].wait_exit(Duration::from_secs(7)).await;
    assert!(status.success(), "node-3 exited with {status} after SIGTERM");
    traffic_flows(&ledger, "after node-3 drained").await;

    phase("stop sending; receive until the queue is empty");
    stop_producers.store(true, Ordering::Relaxed);
    for task in producers {
        task.await.expect("producer");
    }
    // Past this, a message missing is lost: report it rather than time out.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut emptied = false;
    let mut counts = None;
    while Instant::now() < deadline {
        let all_received = {
            let ledger = lock(&ledger);
            let delivered: HashSet<&str> = ledger.deliveries.iter().map(|d| d.id.as_str()).collect();
            ledger.sent.values().all(|id| delivered.contains(id.as_str()))
        };
        counts = queue_counts(&failover, &queue).await;
        if all_received && counts == Some((0, 0, 0)) {
            emptied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_consumers.store(true, Ordering::Relaxed);
    for task in consumers {
        task.await.expect("consumer");
    }
    phase("done");

    let ledger = lock(&ledger);
    let mut deliveries_of: HashMap<&str, Vec<&Delivery>> = HashMap::new();
    for d in &ledger.deliveries {
        deliveries_of.entry(d.id.as_str()).or_default().push(d);
    }
    let lost: Vec<(&String, &String)> =
        ledger.sent.iter().filter(|(_, id)| !deliveries_of.contains_key(id.as_str())).collect();
    let came_back: Vec<&Delivery> = ledger
        .deliveries
        .iter()
        .filter(|d| ledger.acked.get(&d.id).is_some_and(|rc| d.receive_count > *rc))
        .collect();
    let duplicates = ledger.deliveries.len() - deliveries_of.len();
    let mut ids_of_body: HashMap<&str, HashSet<&str>> = HashMap::new();
    for d in &ledger.deliveries {
        ids_of_body.entry(d.body.as_str()).or_default().insert(d.id.as_str());
    }
    for (body, id) in &ledger.sent {
        ids_of_body.entry(body.as_str()).or_default().insert(id.as_str());
    }
    let stored_twice: Vec<(&&str, &HashSet<&str>)> =
        ids_of_body.iter().filter(|(_, ids)| ids.len() > 1).collect();
    let unconfirmed_delivered =
        ledger.unconfirmed.iter().filter(|b| ids_of_body.contains_key(b.as_str())).count();
    eprintln!(
        "fault suite: sent {} acked {} duplicates {duplicates} lost {} | deliveries {}, came back after ack {}, \
         stored twice {}, unconfirmed sends {} ({unconfirmed_delivered} delivered anyway), acks perhaps done \
         before a retry {}, stale acks {}, receives given up {}; retried {} connection errors, {} 503s, {} timeouts; \
         {:.1?} in all",
        ledger.sent.len(),
        ledger.acked.len(),
        lost.len(),
        ledger.deliveries.len(),
        came_back.len(),
        stored_twice.len(),
        ledger.unconfirmed.len(),
        ledger.acks_perhaps_done,
        ledger.acks_stale,
        ledger.receives_given_up,
        ledger.retried_connection,
        ledger.retried_unavailable,
        ledger.retried_timeout,
        started.elapsed(),
    );
    assert!(lost.is_empty(), "acknowledged sends never received: {lost:?}");
    assert!(came_back.is_empty(), "delivered again after an ack answered ok: {came_back:?}");
    assert!(ledger.unexpected.is_empty(), "answers no fault explains: {:#?}", ledger.unexpected);
    assert!(stored_twice.is_empty(), "one dedup_id stored under several ids: {stored_twice:?}");
    assert!(emptied, "the queue did not empty: stats {counts:?}");
    assert!(ledger.retried_connection > 0 && ledger.retried_unavailable > 0, "the faults were not felt");
}
