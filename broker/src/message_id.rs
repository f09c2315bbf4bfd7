//! Message ids as clients see them: UUIDs (version 8, RFC 9562) built reversibly from the id space
//! of the queue or topic that numbered the message (its incarnation: the znode's `czxid`, the
//! marker Redis keeps in `inc`) and the sequence number the store gave it (`%016d`, per queue or
//! topic; the Redis layout and order rely on it). Converting at the API's boundary, and only here,
//! leaves the store untouched, needs no lookup to go back (seek by id, dedup answers), and makes
//! ids unique across queues and topics: two znodes never share a `czxid`.
//!
//! Layout (hex digits): `SSSSSSSS-SSSS-8SSS-vQQQ-QQQQQQQQQQQQ`: 60 bits of the space, the version
//! nibble 8, the variant bits `10`, 62 bits of the sequence. Within one queue the ids of later
//! messages sort after those of earlier ones, as text too.

const SPACE_MASK: u64 = (1 << 60) - 1;
const SEQ_MASK: u64 = (1 << 62) - 1;

/// The external id of message `internal` (the store's decimal sequence) numbered in `space`.
/// An id the store did not number (not decimal) or an unknown space (0) is passed through.
pub fn external(space: i64, internal: &str) -> String {
    match internal.parse::<u64>() {
        Ok(seq) if space > 0 && !internal.is_empty() => {
            format_uuid(space as u64 & SPACE_MASK, seq & SEQ_MASK)
        }
        _ => internal.to_string(),
    }
}

fn format_uuid(space: u64, seq: u64) -> String {
    let hi = ((space >> 12) << 16) | (0x8 << 12) | (space & 0xfff);
    let lo = (0b10 << 62) | seq;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// An id as a client gave it: the space it names (`None` for a decimal sequence number, the
/// form brokers used before ids were UUIDs) and the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    space: Option<u64>,
    seq: u64,
}

impl Parsed {
    /// The store's id of this message if it was numbered in `space`.
    pub fn internal_in(&self, space: i64) -> Option<String> {
        match self.space {
            Some(s) if s != space as u64 & SPACE_MASK => None,
            _ => Some(format!("{:016}", self.seq)),
        }
    }
}

/// Parses a message id: a UUID of this layout (any case), or a decimal sequence number of up to
/// 19 digits. `None`: not a message id.
pub fn parse(id: &str) -> Option<Parsed> {
    if !id.is_empty() && id.len() <= 19 && id.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Parsed { space: None, seq: id.parse().ok()? });
    }
    let b = id.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let hex: String = id.chars().filter(|&c| c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hi = u64::from_str_radix(&hex[..16], 16).ok()?;
    let lo = u64::from_str_radix(&hex[16..], 16).ok()?;
    if (hi >> 12) & 0xf != 8 || lo >> 62 != 0b10 {
        return None;
    }
    let space = ((hi >> 16) << 12) | (hi & 0xfff);
    Some(Parsed { space: Some(space), seq: lo & SEQ_MASK })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_go_there_and_back() {
        for (space, seq) in [(1i64, 1u64), (0x1_0000_00a5, 42), (0x0fff_ffff_ffff_ffff, (1 << 62) - 1)] {
            let internal = format!("{seq:016}");
            let id = external(space, &internal);
            assert_eq!(id.len(), 36, "{id}");
            assert_eq!(&id[14..15], "8", "version 8: {id}");
            assert!("89ab".contains(&id[19..20]), "variant: {id}");
            let parsed = parse(&id).unwrap_or_else(|| panic!("{id} does not parse"));
            assert_eq!(parsed.internal_in(space), Some(internal.clone()));
            assert_eq!(parse(&id.to_uppercase()), Some(parsed));
            assert_eq!(parsed.internal_in(space + 1), None, "another queue's id");
        }
    }

    #[test]
    fn ids_of_one_queue_sort_by_sequence_and_differ_across_queues() {
        let a: Vec<String> =
            [1u64, 9, 10, 255, 256, 1 << 40].iter().map(|s| external(77, &format!("{s:016}"))).collect();
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(a, sorted);
        assert_ne!(external(77, "0000000000000001"), external(78, "0000000000000001"));
    }

    #[test]
    fn malformed_ids_are_refused_and_decimal_ones_kept() {
        for bad in [
            "",
            "x",
            "00000001-0000-4000-8000-000000000001",
            "00000001-0000-8000-c000-000000000001",
            "00000001-0000-8000-8000-00000000000g",
            "00000001+0000-8000-8000-000000000001",
            "12345678901234567890",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(parse("5").and_then(|p| p.internal_in(3)), Some("0000000000000005".into()));
        assert_eq!(external(0, "0000000000000005"), "0000000000000005");
    }
}
