//! The kinds of Redis deployment the broker runs on, behind one connection type.
//!
//! - `redis://host:port` (or `rediss://`): one server, through a [`ConnectionManager`].
//! - `redis-cluster://[user:pass@]host1:port1,host2:port2` (or several `redis://` URLs separated by
//!   commas): a Redis Cluster, through the `redis` crate's cluster connection, which learns the slot
//!   map from any listed node, routes each command by its key's slot and follows MOVED/ASK.
//! - `redis-sentinel://[user:pass@]host1:26379,host2:26379/SERVICE`: a primary with replicas
//!   watched by Sentinels; the primary is resolved through the Sentinels and resolved again after a
//!   failover (see `Redis::run`). The credentials are the data nodes'; the Sentinels are asked
//!   with `MOM_REDIS_SENTINEL_PASSWORD` when set, else without.
//!
//! Whatever the kind, the rest of the store sees [`Conn`], a `ConnectionLike`: scripts, commands
//! and single-slot pipelines work on all three unchanged.

use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::Notify;

/// Where the data lives, as parsed from `MOM_REDIS_URL`.
#[derive(Debug, Clone, PartialEq)]
pub enum Address {
    Single(String),
    /// Node URLs (`redis://...`), any of which leads to the whole cluster.
    Cluster(Vec<String>),
    Sentinel {
        /// Sentinel URLs (`redis://host:port`).
        sentinels: Vec<String>,
        /// The monitored primary's name (`SENTINEL MONITOR <name> ...`).
        service: String,
        /// Credentials of the primary and replicas (the part before `@`), if any.
        userinfo: Option<String>,
    },
}

fn invalid(what: String) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, "invalid Redis address", what))
}

/// Splits `[userinfo@]h1:p1,h2:p2[/path]` into its parts; hosts without a port get `default_port`.
fn split_hosts(rest: &str, default_port: u16) -> RedisResult<(Option<String>, Vec<String>, String)> {
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p.to_string()),
        None => (rest, String::new()),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, authority),
    };
    let hosts: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            if h.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
                h.to_string()
            } else {
                format!("{h}:{default_port}")
            }
        })
        .collect();
    if hosts.is_empty() {
        return Err(invalid("no host listed".into()));
    }
    Ok((userinfo, hosts, path))
}

impl Address {
    /// Parses `MOM_REDIS_URL`; every node URL it yields is checked by the `redis` crate's parser.
    pub fn parse(url: &str) -> RedisResult<Address> {
        let url = url.trim();
        let address = if let Some(rest) =
            url.strip_prefix("redis-cluster://").or_else(|| url.strip_prefix("rediss-cluster://"))
        {
            let scheme = if url.starts_with("rediss") { "rediss" } else { "redis" };
            let (userinfo, hosts, _) = split_hosts(rest, 6379)?;
            let auth = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
            Address::Cluster(hosts.iter().map(|h| format!("{scheme}://{auth}{h}")).collect())
        } else if let Some(rest) = url.strip_prefix("redis-sentinel://") {
            let (userinfo, hosts, path) = split_hosts(rest, 26379)?;
            let service = path.trim_matches('/').to_string();
            if service.is_empty() {
                return Err(invalid("redis-sentinel:// needs the primary's name as its path, e.g. redis-sentinel://h1:26379,h2:26379/mymaster".into()));
            }
            Address::Sentinel {
                sentinels: hosts.iter().map(|h| format!("redis://{h}")).collect(),
                service,
                userinfo,
            }
        } else if url.contains(',') {
            Address::Cluster(
                url.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect(),
            )
        } else {
            Address::Single(url.to_string())
        };
        match &address {
            Address::Single(u) => drop(u.as_str().into_connection_info()?),
            Address::Cluster(nodes) => {
                for n in nodes {
                    n.as_str().into_connection_info()?;
                }
            }
            Address::Sentinel { sentinels, .. } => {
                for s in sentinels {
                    s.as_str().into_connection_info()?;
                }
            }
        }
        Ok(address)
    }
}

/// A connection to whichever kind of deployment; cheap to clone (clones share the sockets).
///
/// Errors that mean "this may no longer be the primary" (connection lost, timeout, READONLY,
/// MASTERDOWN) ring `trouble`, so that the health loop re-resolves the primary at once instead of
/// at its next tick.
#[derive(Clone)]
pub struct Conn {
    inner: Inner,
    trouble: Arc<Notify>,
}

#[derive(Clone)]
enum Inner {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    pub fn single(c: ConnectionManager, trouble: Arc<Notify>) -> Self {
        Conn { inner: Inner::Single(c), trouble }
    }

    pub fn cluster(c: ClusterConnection, trouble: Arc<Notify>) -> Self {
        Conn { inner: Inner::Cluster(c), trouble }
    }

    fn observe_error(&self, e: &RedisError) {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || matches!(e.kind(), ErrorKind::ReadOnly | ErrorKind::MasterDown)
        {
            self.trouble.notify_one();
        }
    }

    fn observe_value(&self, v: &Value) {
        if let Value::ServerError(e) = v {
            if matches!(e.code(), "READONLY" | "MASTERDOWN") {
                self.trouble.notify_one();
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = match &mut self.inner {
                Inner::Single(c) => c.req_packed_command(cmd).await,
                Inner::Cluster(c) => c.req_packed_command(cmd).await,
            };
            match &result {
                Ok(v) => self.observe_value(v),
                Err(e) => self.observe_error(e),
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = match &mut self.inner {
                Inner::Single(c) => c.req_packed_commands(cmd, offset, count).await,
                Inner::Cluster(c) => c.req_packed_commands(cmd, offset, count).await,
            };
            match &result {
                Ok(vs) => vs.iter().for_each(|v| self.observe_value(v)),
                Err(e) => self.observe_error(e),
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// A connection whose script calls are followed by `WAIT replicas timeout` on the same socket, in
/// the same round trip (a two-command pipeline, so no reconnect can slip between the write and the
/// WAIT). On a cluster the pipeline goes to the shard owning the script's keys, so the WAIT asks
/// that shard's replicas. What WAIT answered is kept for [`Acked::acked`].
pub struct Acked {
    conn: Conn,
    replicas: u32,
    timeout_ms: u64,
    acked: Option<i64>,
}

impl Acked {
    pub fn new(conn: Conn, replicas: u32, timeout_ms: u64) -> Self {
        Acked { conn, replicas, timeout_ms, acked: None }
    }

    /// How many replicas each write must reach.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// How many replicas confirmed the last script call, or None if no call got that far.
    pub fn acked(&self) -> Option<i64> {
        self.acked
    }
}

impl ConnectionLike for Acked {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let is_script = cmd.args_iter().next().is_some_and(|a| matches!(a, redis::Arg::Simple(n) if n.eq_ignore_ascii_case(b"EVALSHA") || n.eq_ignore_ascii_case(b"EVAL")));
            if !is_script {
                return self.conn.req_packed_command(cmd).await;
            }
            let mut pipe = redis::pipe();
            pipe.add_command(cmd.clone()).cmd("WAIT").arg(self.replicas).arg(self.timeout_ms);
            let mut replies = self.conn.req_packed_commands(&pipe, 0, 2).await?;
            let wait = replies.pop();
            let reply = replies
                .pop()
                .ok_or_else(|| RedisError::from((ErrorKind::ParseError, "short pipeline reply")))?;
            // A script that failed wrote nothing; the WAIT after it says nothing about it.
            if !matches!(reply, Value::ServerError(_)) {
                self.acked = match wait {
                    Some(Value::Int(n)) => Some(n),
                    _ => None,
                };
            }
            Ok(reply)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.conn.req_packed_commands(cmd, offset, count)
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(
            Address::parse("redis://127.0.0.1:6379").unwrap(),
            Address::Single("redis://127.0.0.1:6379".into())
        );
        assert_eq!(
            Address::parse("redis-cluster://a:7000,b:7001,c").unwrap(),
            Address::Cluster(vec!["redis://a:7000".into(), "redis://b:7001".into(), "redis://c:6379".into()])
        );
        assert_eq!(
            Address::parse("redis-cluster://u:p%40ss@a:7000,b:7001/").unwrap(),
            Address::Cluster(vec!["redis://u:p%40ss@a:7000".into(), "redis://u:p%40ss@b:7001".into()])
        );
        assert_eq!(
            Address::parse("redis://a:1, redis://b:2").unwrap(),
            Address::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
        assert_eq!(
            Address::parse("redis-sentinel://:secret@s1,s2:5000/mymaster").unwrap(),
            Address::Sentinel {
                sentinels: vec!["redis://s1:26379".into(), "redis://s2:5000".into()],
                service: "mymaster".into(),
                userinfo: Some(":secret".into()),
            }
        );
    }

    #[test]
    fn rejects_what_cannot_work() {
        assert!(Address::parse("redis-sentinel://s1:26379").is_err(), "no service name");
        assert!(Address::parse("redis-cluster://").is_err(), "no host");
        assert!(Address::parse("http://x").is_err());
        assert!(Address::parse("redis://a:1,http://b").is_err());
    }
}
