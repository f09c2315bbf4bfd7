//! Bearer tokens: the `Authorization` header (`service::auth::bearer_token`) and the JWT check
//! `Broker::authenticate` makes, with the production key derivation (`Auth::keys`), validation
//! settings (`Auth::new`: HS256 only, no leeway) and claims type (`Claims`). The generation check
//! against ZooKeeper that follows is not part of this target.
//!
//! Input: a selector byte, then
//! - 0 (header): the `Authorization` header value. Whatever verifies carries the right signature.
//! - 1 (signed): `header JSON \0 claims JSON`, signed with the key: exercises the header and
//!   claims parsers behind the signature check. Whatever verifies is HS256, unexpired, and fails
//!   under another key.

#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey};
use libfuzzer_sys::fuzz_target;
use mom_broker::service::auth::{bearer_token, validate_password, validate_username, Auth, AuthSettings, Claims};
use mom_broker::store::{LimitStore, Redis};
use sha2::Sha256;

const SECRET: &[u8] = b"fuzz jwt secret: not a secret, 32b";

static AUTH: LazyLock<Auth> = LazyLock::new(|| {
    // Redis::new only parses the URL; nothing here connects.
    let redis = Redis::new(
        "redis://127.0.0.1:1",
        None,
        None,
        "fuzz",
        mom_broker::store::Options {
            timeout: Duration::from_secs(1),
            min_replicas_ack: 0,
            replica_ack_timeout: Duration::from_secs(1),
            dedup_window: Duration::from_secs(300),
        },
    ).expect("a valid URL");
    let settings = AuthSettings {
        token_ttl: Duration::from_secs(3600),
        rate_limit_rps: 0,
        rate_limit_burst: 0,
        trusted_proxies: Vec::new(),
    };
    let auth = Auth::new(settings, LimitStore::new(redis));
    auth.keys(SECRET);
    auth
});

fn mac(signing_input: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
    m.update(signing_input.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// What `Broker::authenticate` does before it looks at the user's generation.
fn decode(token: &str) -> Option<Claims> {
    jsonwebtoken::decode::<Claims>(token, &AUTH.keys(SECRET).decoding, &AUTH.validation).ok().map(|d| d.claims)
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Properties of a token that verified.
fn verified(token: &str, claims: &Claims) {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        panic!("verified a token that is not three segments: {token:?}");
    };
    assert_eq!(URL_SAFE_NO_PAD.decode(s).ok(), Some(mac(&format!("{h}.{p}"))), "wrong signature verified: {token:?}");
    let header = jsonwebtoken::decode_header(token).expect("a verified token has a header");
    assert_eq!(header.alg, Algorithm::HS256);
    let claims = serde_json::to_value(claims).expect("claims serialize");
    let exp = claims.get("exp").and_then(|e| e.as_u64()).expect("exp is required");
    assert!(exp > now_s().saturating_sub(5), "expired token verified: {claims}");
    assert!(
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(b"another key"), &AUTH.validation).is_err(),
        "verified under another key"
    );
    if let Some(sub) = claims.get("sub").and_then(|s| s.as_str()) {
        let _ = validate_username(sub);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    if kind % 2 == 0 {
        let Ok(header) = std::str::from_utf8(rest) else { return };
        let _ = validate_password(header);
        let Some(token) = bearer_token(header) else { return };
        assert!(header.starts_with("Bearer ") || header.starts_with("bearer "));
        assert_eq!(token, token.trim());
        if let Some(claims) = decode(token) {
            verified(token, &claims);
        }
        return;
    }
    let mut split = rest.splitn(2, |&b| b == 0);
    let (Some(header), Some(claims)) = (split.next(), split.next()) else { return };
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac(&signing_input)));
    if let Some(c) = decode(&token) {
        verified(&token, &c);
    }
});
