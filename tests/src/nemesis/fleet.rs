//! The system under test — three brokers, a private Redis (AOF, fsync always) and a private
//! ZooKeeper (one server or an ensemble of three), the brokers in network namespaces when the
//! machine allows — and the nemesis's hands on it: making each fault, healing it, and checking
//! afterwards that every node agrees with ZooKeeper.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::json;

use super::checker::CONVERGENCE;
use super::history::{Op, Outcome, Phase, Scope};
use super::net::{Network, Service};
use super::schedule::{Fault, Setup, Step, SESSION_TIMEOUT};
use super::views::{View, ZkState};
use super::workload::{
    node_id, Change, Clients, Ctx, DATA_QUEUES, DATA_VISIBILITY_S, GRANTED_QUEUE, GRANTEE, REQUEST_TIMEOUT,
    TOPIC,
};
use crate::broker::{signal, Broker, BrokerBuilder, Cluster, Services, READY_TIMEOUT};
use crate::client::Client;
use crate::failover::Failover;
use crate::redis_server::{Persistence, RedisServer};
use crate::util::wait_until;
use crate::zookeeper::{ZooKeeperEnsemble, ZooKeeperServer};

pub const BROKERS: usize = 3;

/// `MOM_DRAIN_TIMEOUT_S` of the brokers.
const DRAIN_TIMEOUT_S: u64 = 5;

/// How long a healed fault may take to let traffic flow again.
const RECOVERY: Duration = Duration::from_secs(30);

/// How long after a heal a metadata write through a live node may still be refused.
const WRITABLE_AGAIN: Duration = Duration::from_secs(15);

/// The private ZooKeeper.
#[derive(Debug)]
enum Zk {
    Single(ZooKeeperServer),
    Ensemble(ZooKeeperEnsemble),
}

impl Zk {
    fn connect_string(&self) -> String {
        match self {
            Zk::Single(s) => s.connect_string(),
            Zk::Ensemble(e) => e.connect_string(),
        }
    }

    fn kill_all(&mut self) {
        match self {
            Zk::Single(s) => s.kill(),
            Zk::Ensemble(e) => e.kill_all(),
        }
    }

    async fn start_all(&mut self) {
        match self {
            Zk::Single(s) => s.start().await,
            Zk::Ensemble(e) => e.start_all().await,
        }
    }
}

/// Fields drop in order: brokers first, the network namespaces they run in last.
#[derive(Debug)]
pub struct Fleet {
    brokers: Vec<Broker>,
    builders: Vec<BrokerBuilder>,
    /// Running and not stopped (a paused, killed or drained broker is not up).
    up: Vec<bool>,
    zk: Zk,
    /// The ensemble member a [`Fault::ZkLeaderKill`] took down.
    zk_down: Option<usize>,
    redis: RedisServer,
    cluster: Cluster,
    pub clients: Clients,
    grantee_token: String,
    net: Option<Network>,
}

impl Fleet {
    /// Starts everything, creates what the clients use, and waits until every node sees it.
    pub async fn start(ensemble: bool) -> Fleet {
        let net = match Network::create(BROKERS) {
            Ok(net) => Some(net),
            Err(e) => {
                eprintln!("nemesis: no network namespaces ({e}): brokers on 127.0.0.1, no partitions");
                None
            }
        };
        let (zk_host, redis_host) = match &net {
            Some(net) => (net.zk_host(), net.redis_host()),
            None => ("127.0.0.1".to_string(), "127.0.0.1".to_string()),
        };
        let mut redis = RedisServer::new(Persistence::AppendFsyncAlways);
        if net.is_some() {
            // A later --bind replaces the harness's 127.0.0.1.
            redis = redis.with_args(["--bind".to_string(), format!("127.0.0.1 {redis_host}")]);
        }
        redis.start().await;
        let zk = if ensemble {
            Zk::Ensemble(ZooKeeperEnsemble::started_on(3, &zk_host).await)
        } else {
            let mut server = ZooKeeperServer::on(&zk_host);
            server.start().await;
            Zk::Single(server)
        };
        let redis_url = format!("redis://{redis_host}:{}", redis.port());
        let cluster = Cluster::with_services(Services { redis_url, zk: zk.connect_string() });
        let builders: Vec<BrokerBuilder> = (0..BROKERS)
            .map(|k| {
                let builder = cluster
                    .broker()
                    .node_id(node_id(k))
                    .drain_timeout_s(DRAIN_TIMEOUT_S)
                    .env("MOM_ZK_SESSION_TIMEOUT_MS", SESSION_TIMEOUT.as_millis().to_string())
                    .env("MOM_REDIS_TIMEOUT_MS", "1000")
                    // Every client is the admin: the per-user rate limit is not under test.
                    .env("MOM_RATE_LIMIT_RPS", "0");
                match &net {
                    Some(net) => builder.listen_host(net.broker_host(k)).wrapped_in(net.wrapper(k)),
                    None => builder,
                }
            })
            .collect();
        let mut brokers: Vec<Broker> = builders.iter().cloned().map(BrokerBuilder::spawn).collect();
        for broker in &mut brokers {
            broker.wait_ready(READY_TIMEOUT).await;
        }
        let admin = brokers[0].client();
        for queue in DATA_QUEUES {
            admin
                .put(&format!("/v1/queues/{queue}"), json!({ "visibility_timeout_s": DATA_VISIBILITY_S }))
                .await
                .expect_status(201);
        }
        admin
            .put(&format!("/v1/queues/{GRANTED_QUEUE}"), json!({ "access": "restricted" }))
            .await
            .expect_status(201);
        admin.put(&format!("/v1/topics/{TOPIC}"), json!({})).await.expect_status(201);
        let grantee = brokers[0].add_user(GRANTEE, "user").await;
        let grantee_token = grantee.bearer().unwrap_or_default().to_string();
        for broker in &brokers {
            let client = broker.client();
            wait_until(
                &format!("{} to see the run's queues and topic", broker.node_id()),
                READY_TIMEOUT,
                || async {
                    for path in [format!("/v1/queues/{GRANTED_QUEUE}"), format!("/v1/topics/{TOPIC}")] {
                        if client.get(&path).await.status != 200 {
                            return None;
                        }
                    }
                    Some(())
                },
            )
            .await;
        }
        let failover = |make: &dyn Fn(&Broker) -> Client| {
            Failover::new(brokers.iter().map(|b| make(b).with_timeout(REQUEST_TIMEOUT)))
                .with_patience(Duration::ZERO)
        };
        let clients = Clients {
            admin: failover(&|b| b.client()),
            grantee: failover(&|b| b.client_with_token(&grantee_token)),
            anonymous: failover(&|b| b.anonymous_client()),
        };
        Fleet {
            brokers,
            builders,
            up: vec![true; BROKERS],
            zk,
            zk_down: None,
            redis,
            cluster,
            clients,
            grantee_token,
            net,
        }
    }

    pub fn setup(&self) -> Setup {
        Setup {
            brokers: BROKERS,
            ensemble: matches!(self.zk, Zk::Ensemble(_)),
            partitions: self.net.is_some(),
        }
    }

    /// The ZooKeeper connect string and the cluster's root.
    pub fn zk_root(&self) -> (String, String) {
        (self.cluster.zk.clone(), self.cluster.zk_root.clone())
    }

    fn live(&self) -> Vec<usize> {
        (0..BROKERS).filter(|k| self.up[*k]).collect()
    }

    /// Makes the fault, holds it, heals it, checks convergence, and waits for traffic to flow.
    /// Returns what happened: how long the fault was in force and, for faults between the
    /// brokers and ZooKeeper, whether their sessions outlived it.
    pub async fn apply(&mut self, ctx: &Ctx, n: usize, step: Step, rng: &mut StdRng) -> String {
        let history = &ctx.history;
        let (connect, root) = self.zk_root();
        let sessions = || async { ZkState::read(&connect, &root).await.ok().map(|s| s.sessions) };
        let before = match scope(step.fault) {
            Scope::Cluster | Scope::Node(_) => sessions().await,
            Scope::Data => None,
        };
        let (what, scope) = (step.fault.to_string(), scope(step.fault));
        let record = |start, phase, outcome| {
            let op = Op::Fault { n, what: what.clone(), phase, scope };
            history.push("nemesis", None, start, op, outcome);
        };
        let injected = history.now();
        let outcome = self.inject(step.fault).await;
        record(injected, Phase::Inject, outcome);
        if let Fault::Drain(_) = step.fault {
            // A drained node leaves the cluster at once: the others must drop it.
            self.converge(ctx, n, rng).await;
        }
        // The fault's length.
        tokio::time::sleep(step.hold).await;
        let start = history.now();
        self.heal(step.fault).await;
        record(start, Phase::Heal, Outcome::Ok);
        let healed = history.now();
        self.converge(ctx, n, rng).await;
        let start = history.now();
        let outcome = match ctx.traffic_flows(RECOVERY).await {
            true => Outcome::Ok,
            false => Outcome::Failed(format!("sends and acks did not flow within {RECOVERY:?} of the heal")),
        };
        history.push("nemesis", None, start, Op::Progress { n }, outcome);
        let mut note = format!("in force {:.1?}", healed - injected);
        if let (Some(before), Some(after)) = (before, sessions().await) {
            // Brokers killed, drained or restarted start new sessions anyway.
            let restarted =
                |id: &String| matches!(step.fault, Fault::Kill(k) | Fault::Drain(k) if node_id(k) == *id);
            let kept = before.iter().filter(|(id, _)| !restarted(id)).all(|(id, s)| after.get(id) == Some(s));
            note.push_str(if kept { ", ZooKeeper sessions kept" } else { ", a ZooKeeper session expired" });
        }
        note
    }

    async fn inject(&mut self, fault: Fault) -> Outcome {
        match fault {
            Fault::Kill(k) => {
                self.brokers[k].sigkill();
                self.up[k] = false;
            }
            Fault::Drain(k) => {
                self.brokers[k].sigterm();
                self.up[k] = false;
                let status = self.brokers[k].wait_exit(Duration::from_secs(DRAIN_TIMEOUT_S + 10)).await;
                if !status.success() {
                    return Outcome::Unexpected(format!("drained broker exited with {status}"));
                }
            }
            Fault::Pause(k) => {
                signal(self.brokers[k].pid(), libc::SIGSTOP);
                self.up[k] = false;
            }
            Fault::ZkRestart { .. } => self.zk.kill_all(),
            Fault::ZkLeaderKill => {
                let Zk::Ensemble(ensemble) = &mut self.zk else {
                    unreachable!("leader kill without an ensemble")
                };
                let leader =
                    wait_until("the ensemble to have a leader", READY_TIMEOUT, || ensemble.leader()).await;
                ensemble.servers[leader].kill();
                self.zk_down = Some(leader);
            }
            Fault::RedisRestart => self.redis.kill(),
            Fault::Partition { node, from, .. } => {
                self.network().cut(node, from).unwrap_or_else(|e| panic!("{e}"))
            }
        }
        Outcome::Ok
    }

    async fn heal(&mut self, fault: Fault) {
        match fault {
            Fault::Kill(k) | Fault::Drain(k) => self.restart(k).await,
            Fault::Pause(k) => {
                signal(self.brokers[k].pid(), libc::SIGCONT);
                self.up[k] = true;
            }
            Fault::ZkRestart { .. } => self.zk.start_all().await,
            Fault::ZkLeaderKill => {
                let Zk::Ensemble(ensemble) = &mut self.zk else {
                    unreachable!("leader kill without an ensemble")
                };
                if let Some(i) = self.zk_down.take() {
                    ensemble.servers[i].start().await;
                }
                ensemble.wait_serving(READY_TIMEOUT).await;
            }
            Fault::RedisRestart => {
                self.redis.start().await;
                for k in self.live() {
                    self.brokers[k].wait_probe("/readyz", 200, RECOVERY).await;
                }
            }
            Fault::Partition { node, from, .. } => {
                self.network().heal(node, from).unwrap_or_else(|e| panic!("{e}"));
                if from == Service::Redis {
                    self.brokers[node].wait_probe("/readyz", 200, RECOVERY).await;
                }
            }
        }
    }

    fn network(&self) -> &Network {
        self.net.as_ref().expect("partitions are scheduled only with network namespaces")
    }

    /// Starts broker `k` again (same id, a new port) and points the clients at it.
    async fn restart(&mut self, k: usize) {
        self.brokers[k] = self.builders[k].clone().start().await;
        let broker = &self.brokers[k];
        self.clients.admin.set(k, broker.client().with_timeout(REQUEST_TIMEOUT));
        self.clients
            .grantee
            .set(k, broker.client_with_token(&self.grantee_token).with_timeout(REQUEST_TIMEOUT));
        self.clients.anonymous.set(k, broker.anonymous_client().with_timeout(REQUEST_TIMEOUT));
        self.up[k] = true;
    }

    /// With the metadata writer held off: once every live node writes to ZooKeeper again,
    /// rounds comparing every live node with ZooKeeper until they agree (the heal converged);
    /// then changes made through one live node, and rounds again (the changes reached every
    /// node). Each round is recorded; the checker judges them.
    async fn converge(&self, ctx: &Ctx, n: usize, rng: &mut StdRng) {
        let history = &ctx.history;
        let _turn = ctx.metadata_turn.lock().await;
        let live = self.live();
        // A write through each node shows that it is connected to ZooKeeper again.
        let deadline = tokio::time::Instant::now() + WRITABLE_AGAIN;
        for &k in &live {
            let start = history.now();
            loop {
                let toggle = if rng.random_bool(0.5) { Change::Grant } else { Change::Revoke };
                if matches!(ctx.change("nemesis", toggle, k, rng).await, Outcome::Ok) {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    let why = format!(
                        "metadata writes through {} refused {WRITABLE_AGAIN:?} after the heal",
                        node_id(k)
                    );
                    history.push("nemesis", Some(k), start, Op::Progress { n }, Outcome::Failed(why));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        self.observe(ctx, n, &live).await;
        let node = live[rng.random_range(0..live.len())];
        for change in [
            Change::CreateQueue,
            Change::PatchQueue,
            Change::DeleteQueue,
            Change::CreateUser,
            Change::DeleteUser,
            Change::CreateTopic,
            Change::CreateSubscription,
        ] {
            ctx.change("nemesis", change, node, rng).await;
        }
        self.observe(ctx, n, &live).await;
    }

    /// Rounds until every live node agrees with ZooKeeper, or [`CONVERGENCE`] (and a second, to
    /// show what was still wrong then) has passed.
    async fn observe(&self, ctx: &Ctx, n: usize, live: &[usize]) {
        let history = &ctx.history;
        let since = history.now();
        loop {
            let start = history.now();
            let outcome = match self.differences(live).await {
                Ok(()) => Outcome::Ok,
                Err(diff) => Outcome::Failed(diff),
            };
            let agreed = matches!(outcome, Outcome::Ok);
            history.push("nemesis", None, start, Op::Observe { n, since }, outcome);
            if agreed || history.now() > since + CONVERGENCE + Duration::from_secs(1) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether ZooKeeper lists exactly the live brokers, every live broker serves the metadata
    /// and membership ZooKeeper holds, and exactly the leader ZooKeeper names says `mom_leader 1`.
    async fn differences(&self, live: &[usize]) -> Result<(), String> {
        let (connect, root) = self.zk_root();
        let truth = ZkState::read(&connect, &root).await?;
        let mut diffs = Vec::new();
        let listed: Vec<&String> = truth.view.nodes.keys().collect();
        let expected: Vec<String> = live.iter().map(|k| node_id(*k)).collect();
        if listed.iter().map(|s| s.as_str()).ne(expected.iter().map(String::as_str)) {
            diffs.push(format!("ZooKeeper lists nodes {listed:?}, the live brokers are {expected:?}"));
        }
        let views = futures::future::join_all(live.iter().map(|k| async move {
            View::of_node(&self.brokers[*k].client().with_timeout(REQUEST_TIMEOUT)).await
        }))
        .await;
        for (k, view) in live.iter().zip(views) {
            match view {
                Ok(view) => diffs.extend(
                    view.differences(&truth.view).into_iter().map(|d| format!("{}: {d}", node_id(*k))),
                ),
                Err(e) => diffs.push(format!("{}: {e}", node_id(*k))),
            }
        }
        let flags =
            futures::future::join_all(live.iter().map(|k| self.brokers[*k].metric("mom_leader"))).await;
        let claims: Vec<String> =
            live.iter().zip(flags).filter(|(_, f)| *f == Some(1.0)).map(|(k, _)| node_id(*k)).collect();
        if claims.iter().map(String::as_str).ne(truth.view.leader.iter().map(String::as_str)) {
            diffs.push(format!("mom_leader 1 on {claims:?}, ZooKeeper's leader is {:?}", truth.view.leader));
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs.join("; "))
        }
    }

    /// `mom_metadata_resyncs_total` by cause, summed over the live nodes (empty before the broker
    /// counts them).
    pub async fn resyncs(&self) -> Vec<(String, f64)> {
        let mut sums: Vec<(String, f64)> = Vec::new();
        for k in self.live() {
            let Ok(resp) = self.brokers[k]
                .anonymous_client()
                .try_request(reqwest::Method::GET, "/metrics", crate::client::Body::None)
                .await
            else {
                continue;
            };
            for cause in ["reconnect", "drift", "session"] {
                if let Some(v) =
                    crate::topic::metric_sample(&resp.text, "mom_metadata_resyncs_total", &[("cause", cause)])
                {
                    match sums.iter_mut().find(|(c, _)| c == cause) {
                        Some((_, sum)) => *sum += v,
                        None => sums.push((cause.to_string(), v)),
                    }
                }
            }
        }
        sums
    }
}

/// Whose view of the metadata the fault may hold up.
fn scope(fault: Fault) -> Scope {
    match fault {
        Fault::Kill(k) | Fault::Drain(k) | Fault::Pause(k) => Scope::Node(k),
        Fault::Partition { node, from: Service::ZooKeeper, .. } => Scope::Node(node),
        Fault::Partition { from: Service::Redis, .. } | Fault::RedisRestart => Scope::Data,
        Fault::ZkRestart { .. } | Fault::ZkLeaderKill => Scope::Cluster,
    }
}
