//! SQS's validation rules, with SQS's error codes and wording, checked before anything reaches
//! the core (whose messages name native fields): the characters a body may hold, message
//! attribute names and data types, the size of a message with its attributes, batch entry ids,
//! and the numeric parameters' ranges.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use super::SqsError;

/// Entries in one batch request.
pub const MAX_BATCH: usize = 10;
/// Message attributes on one message.
pub const MAX_ATTRIBUTES: usize = 10;
/// The longest attribute name the core stores (SQS allows 256).
const MAX_NATIVE_NAME: usize = 64;

const ALLOWED: &str = "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF";

fn allowed(c: char) -> bool {
    matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// A body holds only characters of SQS's set.
pub fn body(body: &str) -> Result<(), SqsError> {
    match body.chars().find(|&c| !allowed(c)) {
        None => Ok(()),
        Some(c) => Err(SqsError::bad(
            "InvalidMessageContents",
            format!(
                "Invalid binary character '#x{:X}' was found in the message body, the set of allowed characters is {ALLOWED}",
                c as u32
            ),
        )),
    }
}

/// A string attribute value holds only characters of SQS's set.
pub fn attribute_value(name: &str, value: &str) -> Result<(), SqsError> {
    match value.chars().find(|&c| !allowed(c)) {
        None => Ok(()),
        Some(c) => Err(SqsError::invalid(format!(
            "Invalid binary character '#x{:X}' was found in the value of message attribute '{name}', the set of allowed characters is {ALLOWED}",
            c as u32
        ))),
    }
}

/// A message attribute name: 1 to 256 of `A-Za-z0-9_.-`, no leading, trailing or doubled `.`,
/// not starting `AWS.` or `Amazon.` (any case); and, here, at most 64 characters.
pub fn attribute_name(name: &str) -> Result<(), SqsError> {
    let bad = |reason: &str| {
        SqsError::invalid(format!("Message (user) attribute name '{name}' is invalid. Reason: {reason}"))
    };
    if name.is_empty() || name.len() > 256 {
        return Err(bad("must be 1 to 256 characters long."));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        return Err(bad(
            "can only contain alphanumeric characters, hyphens (-), underscores (_) and periods (.).",
        ));
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return Err(bad("cannot start or end with a period (.), or have periods in succession (..)."));
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("aws.") || lower.starts_with("amazon.") {
        return Err(bad("names starting with AWS. or Amazon. are reserved for use by AWS."));
    }
    if name.len() > MAX_NATIVE_NAME {
        return Err(bad("this broker keeps names of at most 64 characters."));
    }
    Ok(())
}

/// A data type: `String`, `Number` or `Binary`, optionally followed by `.label`; 256 at most.
pub fn data_type(name: &str, data_type: &str) -> Result<(), SqsError> {
    let (base, label) = match data_type.split_once('.') {
        Some((b, l)) => (b, Some(l)),
        None => (data_type, None),
    };
    let label_ok = label
        .is_none_or(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
    if !["String", "Number", "Binary"].contains(&base) || !label_ok || data_type.len() > 256 {
        return Err(SqsError::invalid(format!(
            "The type of message (user) attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
        )));
    }
    Ok(())
}

/// At most [`MAX_ATTRIBUTES`] message attributes.
pub fn attribute_count(n: usize) -> Result<(), SqsError> {
    if n > MAX_ATTRIBUTES {
        return Err(SqsError::invalid(format!(
            "Number of message attributes [{n}] exceeds the allowed maximum [{MAX_ATTRIBUTES}]."
        )));
    }
    Ok(())
}

/// A message with its attributes within the queue's `MaximumMessageSize`.
pub fn size(bytes: usize, max: u32) -> Result<(), SqsError> {
    if bytes > max as usize {
        return Err(SqsError::invalid(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {max} bytes."
        )));
    }
    Ok(())
}

/// A whole batch within the queue's `MaximumMessageSize`.
pub fn batch_size(bytes: usize, max: u32) -> Result<(), SqsError> {
    if bytes > max as usize {
        return Err(SqsError::bad(
            "BatchRequestTooLong",
            format!("Batch requests cannot be longer than {max} bytes. You have sent {bytes} bytes."),
        ));
    }
    Ok(())
}

/// A batch's entry ids: 1 to 10, distinct, each 1 to 80 of `A-Za-z0-9_-`.
pub fn batch_ids<'a>(ids: impl Iterator<Item = &'a String>) -> Result<Vec<String>, SqsError> {
    let ids: Vec<String> = ids.cloned().collect();
    if ids.is_empty() {
        return Err(SqsError::bad("EmptyBatchRequest", "There should be at least one entry in the request."));
    }
    if ids.len() > MAX_BATCH {
        return Err(SqsError::bad(
            "TooManyEntriesInBatchRequest",
            format!("Maximum number of entries per request are {MAX_BATCH}. You have sent {}.", ids.len()),
        ));
    }
    let well_formed = |id: &String| {
        (1..=80).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if let Some(bad) = ids.iter().find(|id| !well_formed(id)) {
        return Err(SqsError::bad(
            "InvalidBatchEntryId",
            format!("A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long. Invalid id: {bad:?}"),
        ));
    }
    if ids.iter().collect::<HashSet<_>>().len() != ids.len() {
        return Err(SqsError::bad(
            "BatchEntryIdsNotDistinct",
            "Two or more batch entries in the request have the same Id.",
        ));
    }
    Ok(ids)
}

/// A numeric request parameter within its range, in SQS's words.
pub fn in_range(param: &str, value: i64, range: RangeInclusive<i64>) -> Result<u32, SqsError> {
    if range.contains(&value) {
        Ok(value as u32)
    } else {
        Err(SqsError::invalid(format!(
            "Value {value} for parameter {param} is invalid. Reason: Must be between {} and {}, if provided.",
            range.start(),
            range.end()
        )))
    }
}

/// A `ReceiveRequestAttemptId`: 1 to 128 characters of A-Z, a-z, 0-9 and punctuation.
pub fn attempt_id(id: &str) -> Result<(), SqsError> {
    let ok = (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation());
    if ok {
        Ok(())
    } else {
        Err(SqsError::invalid(format!(
            "Value {id} for parameter ReceiveRequestAttemptId is invalid. Reason: It can only include alphanumeric and punctuation characters. 1 to 128 in length."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_outside_the_set_are_refused() {
        for ok in ["plain", "tab\there\r\n", "\u{D7FF}\u{E000}\u{FFFD}\u{10000}\u{10FFFF}", ""] {
            assert!(body(ok).is_ok(), "{ok:?}");
        }
        for bad in ["\u{0}", "a\u{1}", "\u{1F}", "\u{FFFE}", "\u{FFFF}"] {
            let e = body(bad).expect_err(bad);
            assert_eq!(e.code, "InvalidMessageContents");
        }
        assert!(body("x\u{1B}").unwrap_err().message.contains("'#x1B'"));
    }

    #[test]
    fn attribute_names_and_types_follow_sqs() {
        for ok in ["a", "trace-id", "a.b_c-D9"] {
            assert!(attribute_name(ok).is_ok(), "{ok}");
        }
        for bad in
            ["", ".a", "a.", "a..b", "AWS.x", "amazon.x", "a b", "é", &"x".repeat(65), &"x".repeat(257)]
        {
            assert_eq!(attribute_name(bad).expect_err(bad).code, "InvalidParameterValue", "{bad}");
        }
        for ok in ["String", "Number", "Binary", "Number.float", "String.my-label_1"] {
            assert!(data_type("n", ok).is_ok(), "{ok}");
        }
        for bad in ["string", "Text", "Number.", "String.a b", ""] {
            assert!(data_type("n", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn batch_ids_follow_sqs() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(batch_ids(ids(&[]).iter()).unwrap_err().code, "EmptyBatchRequest");
        let eleven: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        assert_eq!(batch_ids(eleven.iter()).unwrap_err().code, "TooManyEntriesInBatchRequest");
        assert_eq!(batch_ids(ids(&["a", "a"]).iter()).unwrap_err().code, "BatchEntryIdsNotDistinct");
        for bad in ["a.b", "", &"x".repeat(81)] {
            assert_eq!(batch_ids(ids(&[bad]).iter()).unwrap_err().code, "InvalidBatchEntryId", "{bad:?}");
        }
        assert!(batch_ids(ids(&["a-1", "B_2", &"x".repeat(80)]).iter()).is_ok());
    }
}
