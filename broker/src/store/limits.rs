//! Counters behind rate limits: the cluster-wide token buckets and failed-login counts.

use std::sync::{Arc, LazyLock};

use redis::Script;

use super::Redis;
use crate::error::{Error, Result};

static BUCKET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/bucket.lua")));

/// Fencing for the leader's work: accepts a token at least as new as the last one seen.
static FENCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local cur = tonumber(redis.call('GET', KEYS[1]) or '-1') \
         if tonumber(ARGV[1]) < cur then return 0 end \
         redis.call('SET', KEYS[1], ARGV[1]) return 1",
    )
});

/// Failed logins are counted over this window.
pub const LOGIN_WINDOW_S: u64 = 60;

#[derive(Clone)]
pub struct LimitStore {
    redis: Arc<Redis>,
}

impl LimitStore {
    pub fn new(redis: Arc<Redis>) -> Self {
        LimitStore { redis }
    }

    /// Takes up to `want` tokens from `user`'s bucket: (granted, ms until the next token).
    pub async fn take(&self, user: &str, rate: u32, burst: u32, want: u32) -> Result<(u32, u64)> {
        BUCKET
            .key(format!("{}:rl:{{{user}}}", self.redis.prefix))
            .arg(rate)
            .arg(burst)
            .arg(want)
            .invoke_async(&mut self.redis.conn()?)
            .await
            .map_err(Error::redis)
    }

    /// Records `token` as the newest leader's; false when a newer leader has already acted, so
    /// a deposed leader that has not noticed yet does no work.
    pub async fn fence(&self, token: u64) -> Result<bool> {
        let ok: i64 = FENCE
            .key(format!("{}:leader-fence", self.redis.prefix))
            .arg(token)
            .invoke_async(&mut self.redis.conn()?)
            .await
            .map_err(Error::redis)?;
        Ok(ok == 1)
    }

    fn failure_key(&self, what: &str) -> String {
        format!("{}:lf:{what}", self.redis.prefix)
    }

    /// Counts a login attempt against each key before the password is checked; returns each
    /// key's attempts in the current window with the seconds left in it. One pipeline per key,
    /// all at once: the keys may live on different shards of a cluster.
    pub async fn reserve(&self, keys: &[String]) -> Result<Vec<(u64, i64)>> {
        let conn = self.redis.conn()?;
        let calls = keys.iter().map(|k| {
            let key = self.failure_key(k);
            let mut conn = conn.clone();
            async move {
                let mut pipe = redis::pipe();
                pipe.cmd("INCR").arg(&key).cmd("EXPIRE").arg(&key).arg(LOGIN_WINDOW_S).arg("NX").ignore();
                pipe.cmd("TTL").arg(&key);
                pipe.query_async::<(u64, i64)>(&mut conn).await
            }
        });
        futures::future::try_join_all(calls).await.map_err(Error::redis)
    }

    /// Takes back the reservation of a login that succeeded.
    pub async fn release(&self, keys: &[String]) -> Result<()> {
        let conn = self.redis.conn()?;
        let calls = keys.iter().map(|k| {
            let key = self.failure_key(k);
            let mut conn = conn.clone();
            async move { redis::cmd("DECR").arg(&key).query_async::<()>(&mut conn).await }
        });
        futures::future::try_join_all(calls).await.map_err(Error::redis)?;
        Ok(())
    }
}
