//! Receipts: a delivery's handle for ack, nack and visibility changes.
//!
//! A receipt names the message and the delivery that issued it (the receive count), and carries an
//! HMAC over both and the queue, so it cannot be forged, moved to another queue, or reused after a
//! redelivery: the store accepts it only while that delivery is the current one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

const MAC_LEN: usize = 16;

/// The cluster-wide key receipts are signed with (shared through ZooKeeper).
#[derive(Clone)]
pub struct ReceiptKey(Hmac<Sha256>);

impl std::fmt::Debug for ReceiptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReceiptKey(..)")
    }
}

/// A verified receipt: message id and delivery number (epoch and receive count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub delivery: u64,
}

impl ReceiptKey {
    pub fn new(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length.
        ReceiptKey(Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"))
    }

    fn tagged(&self, scope: &str, id: &str, rc: u64) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(format!("{scope}\n{id}\n{rc}").as_bytes());
        mac
    }

    /// `scope` names the queue or subscription, e.g. `q/orders`.
    pub fn issue(&self, scope: &str, id: &str, rc: u64) -> String {
        let full = self.tagged(scope, id, rc).finalize().into_bytes();
        format!("{id}.{rc}.{}", URL_SAFE_NO_PAD.encode(&full[..MAC_LEN]))
    }

    /// Checks the signature; any malformed or foreign receipt is `receipt_invalid`.
    pub fn verify(&self, scope: &str, receipt: &str) -> Result<Delivery> {
        let mut parts = receipt.splitn(3, '.');
        let (Some(id), Some(rc), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::ReceiptInvalid);
        };
        let (rc_text, rc) = (rc, rc.parse::<u64>().map_err(|_| Error::ReceiptInvalid)?);
        // One delivery has one receipt: `03` or `+3` would verify as `3`, so refuse non-canonical forms.
        if rc.to_string() != rc_text {
            return Err(Error::ReceiptInvalid);
        }
        let given = URL_SAFE_NO_PAD.decode(mac).map_err(|_| Error::ReceiptInvalid)?;
        if given.len() != MAC_LEN {
            return Err(Error::ReceiptInvalid);
        }
        self.tagged(scope, id, rc).verify_truncated_left(&given).map_err(|_| Error::ReceiptInvalid)?;
        Ok(Delivery { id: id.to_string(), delivery: rc })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let key = ReceiptKey::new(b"k");
        let r = key.issue("q/a", "0000000000000007", 3);
        assert_eq!(key.verify("q/a", &r).unwrap(), Delivery { id: "0000000000000007".into(), delivery: 3 });
        // Another queue, another key, a changed delivery count, garbage: all invalid.
        assert!(key.verify("q/b", &r).is_err());
        assert!(ReceiptKey::new(b"other").verify("q/a", &r).is_err());
        assert!(key.verify("q/a", &r.replacen(".3.", ".4.", 1)).is_err());
        assert!(key.verify("q/a", &r.replacen(".3.", ".03.", 1)).is_err());
        assert!(key.verify("q/a", &r.replacen(".3.", ".+3.", 1)).is_err());
        assert!(key.verify("q/a", "garbage").is_err());
        assert!(key.verify("q/a", "").is_err());
    }
}
