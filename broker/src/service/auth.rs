//! Authentication: passwords (argon2id), tokens (HS256 JWT), the first admin, and rate limits.
//!
//! A token carries the user's *generation*: the data version of the user's znode and the zxid that
//! created it (a user deleted and created again is a new generation). Changing the
//! password (or role) bumps it and deleting the user removes it; every node checks tokens against
//! its watched cache, so old tokens stop working cluster-wide within a watch round trip.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use ipnet::IpNet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{Broker, Principal};
use crate::error::{Error, Result};
use crate::meta::{Role, UserRecord, Versioned};
use crate::model::{now_ms, rfc3339_ms};
use crate::store::{LimitStore, LOGIN_WINDOW_S};

/// Failed logins allowed per username and per client address in one window.
const MAX_FAILED_LOGINS: u64 = 10;

/// Settings of authentication, from the command line.
#[derive(Clone)]
pub struct AuthSettings {
    pub token_ttl: Duration,
    /// Tokens per second per user, cluster-wide; 0 turns the limit off.
    pub rate_limit_rps: u32,
    pub rate_limit_burst: u32,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    sub: String,
    role: Role,
    /// The user's generation when the token was issued: znode data version and creation zxid.
    gen: i32,
    inc: i64,
    iat: u64,
    exp: u64,
}

/// Why the first admin could not be made: try again later, or give up with a message.
pub enum Bootstrap {
    Retry(Error),
    Fatal(String),
}

/// A freshly issued token.
pub struct Token {
    pub access_token: String,
    pub expires_in: u64,
}

/// Per-node share of a user's cluster-wide token bucket.
#[derive(Default)]
struct Lease {
    tokens: i64,
    /// Set while one request refills the lease from Redis; the others wait on it.
    refill: Option<Arc<Notify>>,
    taken_at: Option<Instant>,
    denied_until: Option<Instant>,
}

/// Leased tokens not used within this long go unused, so idle nodes cannot hoard them.
const LEASE_LIFE: Duration = Duration::from_secs(1);

/// Tokens verified at most this many at a time; past it the cache starts over (see [`Keys`]).
const VERIFIED_TOKENS: usize = 10_000;

/// What a verified token says, kept so that its next use skips the signature check and the JSON
/// decoding (9 % of the broker's CPU per send, BENCHMARKS.md §3) but nothing else.
#[derive(Clone)]
struct Verified {
    sub: String,
    gen: i32,
    inc: i64,
    exp: u64,
}

/// The token keys, and the tokens verified with them. The cache lives next to the key that
/// verified its entries, so whatever would replace the key replaces the cache with it: a cached
/// token can never outlive the secret that signed it. (Today the key is fixed for the process's
/// life: [`Auth::keys`] sets it once.)
pub struct Keys {
    pub encoding: EncodingKey,
    /// Public for the fuzz target (`fuzz/fuzz_targets/token.rs`), which decodes with it.
    pub decoding: DecodingKey,
    /// By the whole token string (not a digest of it): a hit is a token byte for byte identical
    /// to one whose signature was checked. Only accepted tokens get in. Bounded by starting over
    /// when full, which costs a signature check per token in use, instead of an LRU's bookkeeping
    /// on every hit.
    verified: RwLock<HashMap<String, Verified>>,
}

impl Keys {
    fn cached(&self, token: &str) -> Option<Verified> {
        self.verified.read().unwrap_or_else(|e| e.into_inner()).get(token).cloned()
    }

    fn remember(&self, token: &str, claims: Verified) {
        let mut verified = self.verified.write().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_TOKENS {
            verified.clear();
        }
        verified.insert(token.to_string(), claims);
    }
}

pub struct Auth {
    pub settings: AuthSettings,
    pub limits: LimitStore,
    leases: Mutex<HashMap<String, Lease>>,
    keys: OnceLock<Keys>,
    /// Built once: `authenticate` runs on every request.
    pub validation: Validation,
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    authorization.strip_prefix("Bearer ").or_else(|| authorization.strip_prefix("bearer ")).map(str::trim)
}

pub fn validate_username(name: &str) -> Result<()> {
    let ok = (3..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(
            "username must be 3 to 64 characters of A-Z, a-z, 0-9, '_', '.' and '-'".into(),
        ))
    }
}

pub fn validate_password(pw: &str) -> Result<()> {
    let n = pw.chars().count();
    if (12..=256).contains(&n) {
        Ok(())
    } else {
        Err(Error::invalid("password must be 12 to 256 characters"))
    }
}

/// Hashes with argon2id and a fresh salt. CPU-heavy: call from a blocking thread.
pub fn hash_password(pw: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|_| Error::Unavailable("cannot make a salt".into()))?;
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| Error::Unavailable("cannot hash the password".into()))
}

fn verify_password(pw: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
}

/// Runs CPU-heavy password work off the async threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|_| Error::Unavailable("password worker failed".into()))
}

impl Auth {
    pub fn new(settings: AuthSettings, limits: LimitStore) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        Auth { settings, limits, leases: Mutex::new(HashMap::new()), keys: OnceLock::new(), validation }
    }

    /// The client's address: the peer, or the nearest untrusted hop of `X-Forwarded-For` when
    /// the peer is a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let trusted = |ip: &IpAddr| self.settings.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let hops =
            forwarded_for.unwrap_or("").split(',').rev().filter_map(|h| h.trim().parse::<IpAddr>().ok());
        let mut last = peer;
        for hop in hops {
            last = hop;
            if !trusted(&hop) {
                break;
            }
        }
        last
    }

    /// Takes one token from `user`'s bucket; most calls are answered from this node's lease.
    pub async fn admit(&self, user: &str) -> Result<()> {
        let s = &self.settings;
        if s.rate_limit_rps == 0 {
            return Ok(());
        }
        let now = Instant::now();
        // One refill per user at a time; the others wait for it instead of each taking tokens
        // from the shared bucket (which let concurrent requests drain it between them).
        loop {
            let waiting = {
                let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
                if !leases.contains_key(user) {
                    leases.insert(user.to_string(), Lease::default());
                }
                let Some(lease) = leases.get_mut(user) else { return Ok(()) };
                if lease.taken_at.is_some_and(|t| now.duration_since(t) > LEASE_LIFE) {
                    lease.tokens = 0;
                }
                if lease.tokens > 0 {
                    lease.tokens -= 1;
                    return Ok(());
                }
                if let Some(until) = lease.denied_until.filter(|u| *u > now) {
                    return Err(Error::RateLimited {
                        retry_after_s: until.duration_since(now).as_secs().max(1),
                    });
                }
                match &lease.refill {
                    Some(n) => {
                        let mut done = Box::pin(n.clone().notified_owned());
                        done.as_mut().enable();
                        Some(done)
                    }
                    None => {
                        let n = Arc::new(Notify::new());
                        lease.refill = Some(n.clone());
                        None
                    }
                }
            };
            match waiting {
                Some(done) => done.await,
                None => break,
            }
        }
        // Should this request go away during the refill (its client hung up), the guard still
        // ends the refill, so the waiters retry instead of waiting for it forever.
        let mut refilling = Refilling { leases: &self.leases, user, armed: true };
        let want = (s.rate_limit_rps / 50).clamp(1, s.rate_limit_burst.max(1));
        let taken = self.limits.take(user, s.rate_limit_rps, s.rate_limit_burst.max(1), want).await;
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        // Ended here, under the lock: the waiters see the lease as updated below.
        refilling.armed = false;
        let Some(lease) = leases.get_mut(user) else { return Ok(()) };
        if let Some(n) = lease.refill.take() {
            n.notify_waiters();
        }
        // Redis is the request's own store too: on failure answer 503 now rather than let the
        // request wait out a second timeout on its own call.
        let (granted, retry_ms) = taken?;
        lease.taken_at = Some(now);
        if granted > 0 {
            lease.tokens = granted as i64 - 1;
            lease.denied_until = None;
            Ok(())
        } else {
            let wait = Duration::from_millis(retry_ms.max(1));
            lease.denied_until = Some(now + wait);
            Err(Error::RateLimited { retry_after_s: wait.as_secs_f64().ceil() as u64 })
        }
    }

    pub fn keys(&self, secret: &[u8]) -> &Keys {
        self.keys.get_or_init(|| Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            verified: RwLock::new(HashMap::new()),
        })
    }

    /// Whether a token expiring at `exp` has expired, by the same rule as `jsonwebtoken::decode`
    /// under [`Auth::validation`] (so a cached token expires exactly when an uncached one would).
    fn expired(&self, exp: u64) -> bool {
        let v = &self.validation;
        let now = jsonwebtoken::get_current_timestamp();
        v.validate_exp
            && exp.saturating_sub(v.reject_tokens_expiring_in_less_than) < now.saturating_sub(v.leeway)
    }
}

/// A lease refill in progress (see [`Auth::admit`]). Dropped while armed, i.e. when the request
/// making the refill was dropped during it, it ends the refill and wakes the requests waiting for
/// it: one of them refills instead.
struct Refilling<'a> {
    leases: &'a Mutex<HashMap<String, Lease>>,
    user: &'a str,
    armed: bool,
}

impl Drop for Refilling<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = leases.get_mut(self.user).and_then(|l| l.refill.take()) {
            n.notify_waiters();
        }
    }
}

impl Broker {
    /// `POST /v1/auth/token`: checks the password and issues a token.
    pub async fn login(&self, username: &str, password: &str, client: IpAddr) -> Result<Token> {
        let counters = [format!("u:{username}"), format!("a:{client}")];
        // Reserve the attempt before the (slow) password check, so concurrent guesses cannot all
        // pass a check made before any of them failed.
        let attempts = self.auth.limits.reserve(&counters).await?;
        if let Some((_, ttl)) = attempts.iter().find(|(n, _)| *n > MAX_FAILED_LOGINS) {
            let retry_after_s = if *ttl > 0 { *ttl as u64 } else { LOGIN_WINDOW_S };
            return Err(Error::RateLimited { retry_after_s });
        }
        self.meta.current().await;
        let user = self.meta.get_versioned::<UserRecord>(username);
        let hash = user.as_ref().map(|u| u.value.password_hash.clone());
        let pw = password.to_string();
        let ok = blocking(move || match hash {
            Some(h) => verify_password(&pw, &h),
            None => {
                // Same work for an unknown user, so timing does not tell which names exist.
                let _ = hash_password(&pw);
                false
            }
        })
        .await?;
        let Some(Versioned { value: user, stamp }) = user.filter(|_| ok) else {
            tracing::info!(%username, %client, "failed login");
            return Err(Error::Unauthenticated("wrong username or password".into()));
        };
        let secret = self.meta.secrets()?.jwt;
        let ttl = self.auth.settings.token_ttl.as_secs();
        let iat = (now_ms() / 1000) as u64;
        // A successful login does not count against the failure limit.
        self.auth.limits.release(&counters).await?;
        let claims = Claims {
            sub: username.to_string(),
            role: user.role,
            gen: stamp.version,
            inc: stamp.czxid,
            iat,
            exp: iat + ttl,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.auth.keys(&secret).encoding)
                .map_err(|_| Error::Unavailable("cannot sign the token".into()))?;
        Ok(Token { access_token: token, expires_in: ttl })
    }

    /// Checks a bearer token: signature, expiry, and that the user still exists at the same
    /// generation. A token seen before skips the signature check and decoding only: its expiry
    /// and its user's current generation and role are checked on every request, so revocation
    /// (password change, deletion) takes effect exactly as for a token seen for the first time.
    pub fn authenticate(&self, token: &str) -> Result<Principal> {
        let denied = |why: &str| Error::Unauthenticated(why.to_string());
        let keys = match self.auth.keys.get() {
            Some(k) => k,
            None => self.auth.keys(&self.meta.secrets()?.jwt),
        };
        let (claims, fresh) = match keys.cached(token) {
            Some(claims) => (claims, false),
            None => {
                let c = jsonwebtoken::decode::<Claims>(token, &keys.decoding, &self.auth.validation)
                    .map_err(|e| match e.kind() {
                        jsonwebtoken::errors::ErrorKind::ExpiredSignature => denied("the token has expired"),
                        _ => denied("the token is malformed or its signature is wrong"),
                    })?
                    .claims;
                (Verified { sub: c.sub, gen: c.gen, inc: c.inc, exp: c.exp }, true)
            }
        };
        if self.auth.expired(claims.exp) {
            return Err(denied("the token has expired"));
        }
        let admin = match self.meta.user_generation(&claims.sub) {
            Some((stamp, role)) if stamp.version == claims.gen && stamp.czxid == claims.inc => {
                role == Role::Admin
            }
            _ => return Err(denied("the token was revoked: its user was deleted or changed password")),
        };
        if fresh {
            keys.remember(token, claims.clone());
        }
        Ok(Principal { admin, name: claims.sub })
    }

    /// Makes sure an admin exists, creating the first one from the environment. Fails (and the
    /// process exits) when there is none and no password to create one with.
    pub async fn ensure_admin(&self, user: &str, password: Option<String>) -> Result<(), Bootstrap> {
        use Bootstrap::Fatal;
        let has_admin = self.meta.list::<UserRecord>().iter().any(|(_, u)| u.role == Role::Admin);
        if has_admin {
            return Ok(());
        }
        let Some(password) = password.filter(|p| !p.is_empty()) else {
            return Err(Fatal("no admin user exists: set MOM_ADMIN_PASSWORD (and optionally MOM_ADMIN_USER, default 'admin') to create the first one".into()));
        };
        validate_username(user).map_err(|e| Fatal(format!("MOM_ADMIN_USER: {e}")))?;
        validate_password(&password).map_err(|e| Fatal(format!("MOM_ADMIN_PASSWORD: {e}")))?;
        let hash =
            blocking(move || hash_password(&password)).await.and_then(|h| h).map_err(Bootstrap::Retry)?;
        let record = UserRecord { role: Role::Admin, password_hash: hash, created_at: rfc3339_ms(now_ms()) };
        match self.meta.create::<UserRecord>(user, record, |a, _| a.role == Role::Admin).await {
            Ok(_) => {
                tracing::info!(user, "created the first admin");
                Ok(())
            }
            Err(Error::AlreadyExists(_)) => Err(Fatal(format!(
                "user '{user}' exists but is not an admin; set MOM_ADMIN_USER to another name"
            ))),
            Err(e) => Err(Bootstrap::Retry(e)),
        }
    }
}
