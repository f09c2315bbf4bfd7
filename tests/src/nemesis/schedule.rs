//! The seeded schedule of faults: the same seed gives the same faults, on the same nodes, held
//! for the same time, in the same order. Every kind of fault the setup allows comes once, in an
//! order the seed picks, before any comes twice; after that each is drawn at random.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::net::Service;

/// `MOM_ZK_SESSION_TIMEOUT_MS` of the brokers under the nemesis.
pub const SESSION_TIMEOUT: Duration = Duration::from_millis(4000);

/// How long without an answer a broker's ZooKeeper client takes to give its session up itself:
/// 7/5 of the session timeout (zookeeper-client 0.11). A ZooKeeper outage or a partition
/// shorter than this keeps the sessions (the server restores them when it restarts).
pub const CLIENT_EXPIRY: Duration = Duration::from_millis(SESSION_TIMEOUT.as_millis() as u64 * 7 / 5);

/// Added to an outage meant to expire the sessions, for ticks and scheduling.
const EXPIRY_MARGIN: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 of broker K, restarted after the hold.
    Kill(usize),
    /// SIGTERM of broker K (it drains and exits), restarted once the others dropped it.
    Drain(usize),
    /// SIGSTOP of broker K for longer than its session timeout, then SIGCONT.
    Pause(usize),
    /// ZooKeeper (every server of an ensemble) killed and started again after the hold; `long`
    /// outages outlast the sessions.
    ZkRestart { long: bool },
    /// The ensemble's leader killed, and started again after the hold.
    ZkLeaderKill,
    /// Redis killed (kill -9; AOF with fsync always) and started again after the hold.
    RedisRestart,
    /// Broker K cut off ZooKeeper or Redis; `long` partitions outlast the session.
    Partition { node: usize, from: Service, long: bool },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let length = |long: bool| if long { "long" } else { "short" };
        match self {
            Fault::Kill(k) => write!(f, "kill -9 node-{}", k + 1),
            Fault::Drain(k) => write!(f, "SIGTERM (drain) node-{}", k + 1),
            Fault::Pause(k) => write!(f, "SIGSTOP node-{}", k + 1),
            Fault::ZkRestart { long: false } => write!(f, "ZooKeeper restart (short: sessions kept)"),
            Fault::ZkRestart { long: true } => write!(f, "ZooKeeper restart (long: sessions expire)"),
            Fault::ZkLeaderKill => write!(f, "ZooKeeper ensemble leader killed"),
            Fault::RedisRestart => write!(f, "Redis restart (kill -9, AOF always)"),
            Fault::Partition { node, from, long } => {
                write!(f, "node-{} cut off {from:?} ({})", node + 1, length(*long))
            }
        }
    }
}

/// One fault and how long it is held before it is healed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub fault: Fault,
    pub hold: Duration,
}

/// What the setup allows.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub brokers: usize,
    pub ensemble: bool,
    /// Brokers run in network namespaces, so partitions can be made.
    pub partitions: bool,
}

/// The kinds of fault the schedule draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Kill,
    Drain,
    Pause,
    ZkShort,
    ZkLong,
    ZkLeader,
    Redis,
    CutZk,
    CutRedis,
}

const KINDS: [Kind; 9] = [
    Kind::Kill,
    Kind::Drain,
    Kind::Pause,
    Kind::ZkShort,
    Kind::ZkLong,
    Kind::ZkLeader,
    Kind::Redis,
    Kind::CutZk,
    Kind::CutRedis,
];

impl Kind {
    fn allowed(self, setup: Setup) -> bool {
        match self {
            Kind::ZkLeader => setup.ensemble,
            Kind::CutZk | Kind::CutRedis => setup.partitions,
            _ => true,
        }
    }
}

#[derive(Debug)]
pub struct Schedule {
    rng: StdRng,
    setup: Setup,
    /// The kinds not drawn yet in the first round, last first.
    first_round: Vec<Kind>,
}

impl Schedule {
    pub fn new(seed: u64, setup: Setup) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut first_round: Vec<Kind> = KINDS.into_iter().filter(|k| k.allowed(setup)).collect();
        first_round.shuffle(&mut rng);
        Self { rng, setup, first_round }
    }

    /// The next step.
    pub fn next_step(&mut self) -> Step {
        let kind = match self.first_round.pop() {
            Some(kind) => kind,
            None => loop {
                let kind = KINDS[self.rng.random_range(0..KINDS.len())];
                if kind.allowed(self.setup) {
                    break kind;
                }
            },
        };
        self.make(kind)
    }

    fn make(&mut self, kind: Kind) -> Step {
        let node = self.rng.random_range(0..self.setup.brokers);
        let long = self.rng.random_bool(0.5);
        // Short outages stay well inside the client's own expiry; long ones outlast it.
        let short = Duration::from_millis(self.rng.random_range(500..=1500));
        let expire = CLIENT_EXPIRY + EXPIRY_MARGIN;
        let (fault, hold) = match kind {
            Kind::Kill => (Fault::Kill(node), short),
            Kind::Drain => (Fault::Drain(node), Duration::ZERO),
            Kind::Pause => (Fault::Pause(node), SESSION_TIMEOUT + EXPIRY_MARGIN + short),
            Kind::ZkShort => (Fault::ZkRestart { long: false }, short),
            Kind::ZkLong => (Fault::ZkRestart { long: true }, expire),
            Kind::ZkLeader => (Fault::ZkLeaderKill, short + Duration::from_secs(1)),
            Kind::Redis => (Fault::RedisRestart, short),
            Kind::CutZk | Kind::CutRedis => {
                let from = if kind == Kind::CutZk { Service::ZooKeeper } else { Service::Redis };
                let hold = if long { expire } else { short + Duration::from_secs(1) };
                (Fault::Partition { node, from, long }, hold)
            }
        };
        Step { fault, hold }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETUP: Setup = Setup { brokers: 3, ensemble: false, partitions: true };

    #[test]
    fn a_seed_gives_one_schedule_and_every_kind_comes_first() {
        let steps = |seed| {
            let mut s = Schedule::new(seed, SETUP);
            (0..20).map(|_| s.next_step()).collect::<Vec<_>>()
        };
        assert_eq!(steps(7), steps(7));
        assert_ne!(steps(7), steps(8));
        let first: Vec<String> = steps(7)[..8]
            .iter()
            .map(|s| format!("{:?}", s.fault).split(['(', ' ']).next().unwrap_or_default().to_string())
            .collect();
        for kind in ["Kill", "Drain", "Pause", "ZkRestart", "RedisRestart", "Partition"] {
            assert!(first.iter().any(|k| k == kind), "{kind} missing from the first round {first:?}");
        }
        assert!(steps(7).iter().all(|s| s.fault != Fault::ZkLeaderKill), "leader kill without an ensemble");
    }

    #[test]
    fn short_outages_keep_sessions_and_long_ones_outlast_them() {
        let mut s = Schedule::new(1, Setup { ensemble: true, ..SETUP });
        for _ in 0..200 {
            let step = s.next_step();
            match step.fault {
                Fault::ZkRestart { long } | Fault::Partition { long, .. } => {
                    assert_eq!(long, step.hold > CLIENT_EXPIRY, "{step:?}")
                }
                Fault::Pause(_) => assert!(step.hold > SESSION_TIMEOUT, "{step:?}"),
                _ => {}
            }
        }
    }
}
