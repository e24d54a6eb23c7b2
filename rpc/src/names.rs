//! S3 naming rules, shared by the gateway (early rejection) and the metadata
//! state machine (the authority).

/// Longest object key S3 accepts, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Bucket name reserved for Tessera's own HTTP paths (`/tessera/...`).
pub const RESERVED_BUCKET: &str = "tessera";

/// Why a bucket name is refused.
pub fn bucket_name_problem(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return Some("must be 3 to 63 characters long");
    }
    if !b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-') {
        return Some("may contain only lowercase letters, digits, dots and hyphens");
    }
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !edge(b[0]) || !edge(b[b.len() - 1]) {
        return Some("must begin and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Some("must not contain two adjacent periods or a period next to a hyphen");
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit())) {
        return Some("must not be formatted as an IP address");
    }
    if name.starts_with("xn--") || name.starts_with("sthree-") || name.starts_with("amzn-s3-demo-") {
        return Some("must not start with a reserved prefix");
    }
    if name.ends_with("-s3alias") || name.ends_with("--ol-s3") || name.ends_with(".mrap") || name.ends_with("--x-s3") {
        return Some("must not end with a reserved suffix");
    }
    if name == RESERVED_BUCKET {
        return Some("is reserved for Tessera's own endpoints");
    }
    None
}

/// Why an object key is refused (empty, or longer than 1024 bytes).
pub fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("must not be empty")
    } else if key.len() > MAX_KEY_BYTES {
        Some("must be at most 1024 bytes")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["abc", "my-bucket", "my.bucket.1", "a".repeat(63).as_str(), "1bucket", "192.168.5"] {
            assert_eq!(bucket_name_problem(ok), None, "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "MyBucket",
            "my_bucket",
            "-abc",
            "abc-",
            "a..b",
            "a.-b",
            "192.168.5.4",
            "xn--abc",
            "sthree-x",
            "abc-s3alias",
            "abc--ol-s3",
            "tessera",
            "",
            "ünï",
        ] {
            assert!(bucket_name_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn keys_are_1_to_1024_bytes() {
        assert!(key_problem("").is_some());
        assert!(key_problem(&"k".repeat(1024)).is_none());
        assert!(key_problem(&"k".repeat(1025)).is_some());
        assert!(key_problem(&"é".repeat(513)).is_some(), "bytes, not characters");
    }
}

/// The bucket notification events Tessera emits, as a rule names them
/// (the gateway checks configurations, the state machine matches them).
pub const NOTIFY_EVENTS: &[&str] = &[
    "s3:ObjectCreated:*",
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*",
    "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
];

/// The id S3 clients see for the object version written at `seq` (the
/// state machine's log position of the write): 16 hex digits, so ids of
/// one key sort like their versions. The `null` version has no seq id.
pub fn version_id(seq: u64) -> String {
    format!("{seq:016x}")
}

/// What a client's version id names: the `null` version, a version's
/// seq, or nothing Tessera ever made (`None`: S3's "Invalid version id").
pub fn parse_version_id(id: &str) -> Option<VersionRef> {
    if id == "null" {
        return Some(VersionRef::Null);
    }
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    u64::from_str_radix(id, 16).ok().map(VersionRef::Seq)
}

/// A parsed version id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionRef {
    /// The `null` version (unversioned and suspended writes).
    Null,
    /// The version written at this seq.
    Seq(u64),
}

#[cfg(test)]
mod version_tests {
    use super::*;

    #[test]
    fn version_ids_round_trip_and_sort_like_their_versions() {
        for seq in [1u64, 0x1_0000, 0xdead_beef_0003, u64::MAX] {
            assert_eq!(parse_version_id(&version_id(seq)), Some(VersionRef::Seq(seq)));
        }
        assert!(version_id(0x2_0000) > version_id(0x1_ffff));
        assert_eq!(parse_version_id("null"), Some(VersionRef::Null));
        for bad in ["", "NULL", "00000000000000zz", "0000000000000000a", "000000000000000A", "3HL4kqtJlcpXroDTDmJ"] {
            assert_eq!(parse_version_id(bad), None, "{bad}");
        }
    }
}
