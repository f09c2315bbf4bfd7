//! Receipts (`receipt::ReceiptKey::verify`), as clients hand them back on ack, nack, visibility
//! changes and SQS's DeleteMessage.
//!
//! Input: a selector byte, then
//! - 0 (given): `scope \n receipt`. Whatever verifies must be a receipt the key issued.
//! - 1 (edited): `scope \n id \n rc \n position \n insert`: a receipt the key issued for
//!   (scope, id, rc), with `insert` spliced in at `position` (bytes after it removed when
//!   `insert` starts with '-'). An edited receipt that still verifies must name the same delivery.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mom_broker::error::Error;
use mom_broker::receipt::{Delivery, ReceiptKey};

const SECRET: &[u8] = b"fuzz receipt key: not a secret";

fn canonical_rc(receipt: &str) -> bool {
    let rc = receipt.split('.').nth(1).unwrap_or("");
    rc.parse::<u64>().is_ok_and(|n| n.to_string() == rc)
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let key = ReceiptKey::new(SECRET);
    let mut fields = text.split('\n');
    let scope = fields.next().unwrap_or("");
    if kind % 2 == 0 {
        let receipt = fields.next().unwrap_or("");
        match key.verify(scope, receipt) {
            Ok(Delivery { id, delivery }) => {
                // Only the key's own receipts verify, and they are spelled as it issues them
                // (up to the delivery number's spelling: see `edited`).
                let issued = key.issue(scope, &id, delivery);
                if canonical_rc(receipt) {
                    assert_eq!(issued, receipt);
                }
                assert!(key.verify(&format!("{scope}x"), receipt).is_err(), "verified in another scope");
            }
            Err(e) => assert!(matches!(e, Error::ReceiptInvalid), "unexpected error {e:?}"),
        }
        return;
    }
    let (Some(id), Some(rc), Some(pos), Some(insert)) = (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return;
    };
    let Ok(rc) = rc.parse::<u64>() else { return };
    let issued = key.issue(scope, id, rc);
    // Round trip: what the key issues verifies to what it was issued for (message ids never
    // contain '.', the separator).
    if !id.contains('.') {
        assert_eq!(key.verify(scope, &issued).ok(), Some(Delivery { id: id.to_string(), delivery: rc }));
    }
    let pos = pos.parse::<usize>().unwrap_or(0) % (issued.len() + 1);
    if !issued.is_char_boundary(pos) {
        return;
    }
    let mut edited = issued[..pos].to_string();
    match insert.strip_prefix('-') {
        Some(n) => {
            let n = n.parse::<usize>().unwrap_or(1);
            let end = pos.saturating_add(n).min(issued.len());
            if !issued.is_char_boundary(end) {
                return;
            }
            edited.push_str(&issued[end..]);
        }
        None => {
            edited.push_str(insert);
            edited.push_str(&issued[pos..]);
        }
    }
    if edited == issued {
        return;
    }
    // Only the issued spelling verifies (RUNS.md, finding 1 is fixed): any edit is refused.
    if let Ok(d) = key.verify(scope, &edited) {
        panic!("edited receipt {edited:?} of {issued:?} verified as {d:?}");
    }
});
