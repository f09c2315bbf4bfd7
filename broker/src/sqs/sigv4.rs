//! Verifies AWS Signature Version 4 on incoming requests (what every AWS SDK signs with).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Requests signed further than this from the server's clock are refused.
pub const MAX_SKEW_S: i64 = 15 * 60;

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// `date/region/service/aws4_request`.
    pub scope: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_authorization(header: &str) -> Option<Authorization> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256")?.trim();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let (access_key_id, scope) = credential?.split_once('/')?;
    if scope.split('/').count() != 4 || !scope.ends_with("/aws4_request") {
        return None;
    }
    Some(Authorization {
        access_key_id: access_key_id.to_string(),
        scope: scope.to_string(),
        signed_headers: signed?.split(';').map(str::to_string).collect(),
        signature: signature?.to_string(),
    })
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex_sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A request as the signature covers it.
pub struct Signed<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Header values by lowercase name (all values of a repeated header joined by ',').
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub body: &'a [u8],
}

/// The query string as SigV4 canonicalizes it: each name and value decoded and encoded again
/// the one way SigV4 allows (everything but `A-Za-z0-9-_.~` as `%XX`), sorted. Clients send the
/// query in their own encoding (`+` or `%20`, `/` or `%2F`: a query-protocol GET by hand), but all
/// sign its canonical form.
fn canonical_query(query: &str) -> String {
    let encode = |s: &str| {
        s.bytes().fold(String::new(), |mut out, b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
            out
        })
    };
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (encode(&k), encode(&v))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The signature the holder of `secret` would have made for this request.
pub fn expected_signature(auth: &Authorization, req: &Signed<'_>, secret: &str) -> Option<String> {
    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        let value = (req.header)(name)?;
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    // The payload hash is always that of the body that arrived: a claimed x-amz-content-sha256
    // (signed or not, or UNSIGNED-PAYLOAD) that differs fails the check.
    let payload_hash = hex_sha256(req.body);
    if let Some(claimed) = (req.header)("x-amz-content-sha256") {
        if !claimed.eq_ignore_ascii_case(&payload_hash) {
            return None;
        }
    }
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        if req.path.is_empty() { "/" } else { req.path },
        canonical_query(req.query),
        canonical_headers,
        auth.signed_headers.join(";"),
        payload_hash
    );
    let amz_date = (req.header)("x-amz-date")?;
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}", auth.scope, hex_sha256(canonical_request.as_bytes()));
    let mut parts = auth.scope.split('/');
    let (date, region, service) = (parts.next()?, parts.next()?, parts.next()?);
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date);
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, service);
    let k_signing = hmac(&k_service, "aws4_request");
    Some(hex(&hmac(&k_signing, &string_to_sign)))
}

/// Compares in constant time.
pub fn signature_matches(expected: &str, given: &str) -> bool {
    expected.len() == given.len()
        && expected.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Seconds since the epoch of an `x-amz-date` (`20261125T170629Z`).
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(s, &f).ok().map(|t| t.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of AWS's SigV4 documentation (GET with query, IAM ListUsers).
    #[test]
    fn matches_the_documented_example() {
        let auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        )
        .unwrap();
        let header = |name: &str| -> Option<String> {
            match name {
                "content-type" => Some("application/x-www-form-urlencoded; charset=utf-8".into()),
                "host" => Some("iam.amazonaws.com".into()),
                "x-amz-date" => Some("20150830T123600Z".into()),
                _ => None,
            }
        };
        let req = Signed {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            header: &header,
            body: b"",
        };
        let expected = expected_signature(&auth, &req, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY").unwrap();
        assert!(signature_matches(&expected, &auth.signature));
        assert!(!signature_matches(&expected_signature(&auth, &req, "other").unwrap(), &auth.signature));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1440938160));
    }

    /// Differently encoded queries sign alike; pairs sort by encoded name, then value.
    #[test]
    fn canonical_query_normalizes_the_encoding() {
        let canonical = "Action=GetQueueUrl&QueueName=a%20b%2Fc&Version=2012-11-05&Z=";
        assert_eq!(canonical_query("Version=2012-11-05&QueueName=a+b/c&Action=GetQueueUrl&Z"), canonical);
        assert_eq!(
            canonical_query("QueueName=a%20b%2fc&Z=&Action=GetQueueUrl&Version=2012-11-05"),
            canonical
        );
        assert_eq!(canonical_query("b=2&a.10=x&a.1=y&&"), "a.1=y&a.10=x&b=2");
    }
}
