//! The MD5 digests SQS returns and SDKs check: of the body, and of the message attributes in
//! SQS's own binary encoding (sorted by name; each of name, data type, transport byte and value
//! length-prefixed, big-endian).

use md5::{Digest, Md5};

/// One message attribute as SQS carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsAttribute {
    pub data_type: String,
    /// The string value, or the raw bytes of a binary one.
    pub value: Vec<u8>,
    pub binary: bool,
}

pub fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn md5_of_attributes<'a>(attrs: impl IntoIterator<Item = (&'a String, &'a SqsAttribute)>) -> String {
    let mut sorted: Vec<_> = attrs.into_iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut buf = Vec::new();
    let put = |bytes: &[u8], buf: &mut Vec<u8>| {
        buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        buf.extend_from_slice(bytes);
    };
    for (name, a) in sorted {
        put(name.as_bytes(), &mut buf);
        put(a.data_type.as_bytes(), &mut buf);
        buf.push(if a.binary { 2 } else { 1 });
        put(&a.value, &mut buf);
    }
    md5_hex(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_digest() {
        assert_eq!(md5_hex(b"hello"), "5d41402abc4b2a76b9719d911017c592");
    }

    /// Digest of {"a": String "x"} computed by hand from SQS's documented encoding.
    #[test]
    fn attribute_digest_encoding() {
        let attrs = [(
            "a".to_string(),
            SqsAttribute { data_type: "String".into(), value: b"x".to_vec(), binary: false },
        )];
        let mut expected = Vec::new();
        expected.extend_from_slice(&[0, 0, 0, 1, b'a', 0, 0, 0, 6]);
        expected.extend_from_slice(b"String");
        expected.extend_from_slice(&[1, 0, 0, 0, 1, b'x']);
        assert_eq!(md5_of_attributes(attrs.iter().map(|(k, v)| (k, v))), md5_hex(&expected));
    }
}
