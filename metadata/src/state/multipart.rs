//! Multipart completion rules and the multipart ETag, as S3 defines them.

use md5::{Digest, Md5};
use tessera_rpc::proto::meta::{CompletedPart, PartRecord};

use crate::MetaError;

/// Smallest size of every part but the last.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Highest part number.
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Largest object a completion may assemble (5 TiB, as S3).
pub const MAX_OBJECT_SIZE: u64 = 5 << 40;

/// An ETag as given by a client: quotes and surrounding spaces removed.
pub fn bare_etag(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// `md5(md5(part 1) ‖ … ‖ md5(part N))-N`, from the parts' hex MD5 ETags.
pub fn multipart_etag(part_etags: &[&str]) -> Result<String, MetaError> {
    let mut h = Md5::new();
    for e in part_etags {
        let bin = hex::decode(bare_etag(e)).map_err(|_| MetaError::InvalidPart(format!("ETag {e} is not an MD5")))?;
        if bin.len() != 16 {
            return Err(MetaError::InvalidPart(format!("ETag {e} is not an MD5")));
        }
        h.update(&bin);
    }
    Ok(format!("{}-{}", hex::encode(h.finalize()), part_etags.len()))
}

/// Checks a completion request against the stored parts (sorted by number)
/// and returns the chosen parts in order.
pub fn check_completion(requested: &[CompletedPart], stored: &[PartRecord]) -> Result<Vec<PartRecord>, MetaError> {
    if requested.is_empty() {
        return Err(MetaError::InvalidArgument("a completion must name at least one part".into()));
    }
    if requested.windows(2).any(|w| w[0].number >= w[1].number) {
        return Err(MetaError::InvalidPartOrder);
    }
    let mut chosen = Vec::with_capacity(requested.len());
    for r in requested {
        let part = stored
            .binary_search_by_key(&r.number, |p| p.number)
            .ok()
            .map(|i| &stored[i])
            .filter(|p| bare_etag(&p.etag) == bare_etag(&r.etag))
            .ok_or_else(|| {
                MetaError::InvalidPart(format!("part {} with ETag {} was not uploaded", r.number, r.etag))
            })?;
        chosen.push(part.clone());
    }
    if let Some(small) = chosen[..chosen.len() - 1].iter().find(|p| p.size < MIN_PART_SIZE) {
        return Err(MetaError::EntityTooSmall(small.number));
    }
    let total: u64 = chosen.iter().map(|p| p.size).sum();
    if total > MAX_OBJECT_SIZE {
        return Err(MetaError::EntityTooLarge(total));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: u32, size: u64, etag: &str) -> PartRecord {
        PartRecord { number, size, etag: etag.into(), ..Default::default() }
    }

    fn req(number: u32, etag: &str) -> CompletedPart {
        CompletedPart { number, etag: etag.into() }
    }

    const E1: &str = "b6d81b360a5672d80c27430f39153e2c"; // any 16 bytes in hex
    const E2: &str = "0cc175b9c0f1b6a831c399e269772661"; // md5("a")

    #[test]
    fn etag_matches_s3s_definition() {
        // md5(bytes(E1) ‖ bytes(E2)) computed independently:
        let mut h = Md5::new();
        h.update(hex::decode(E1).unwrap());
        h.update(hex::decode(E2).unwrap());
        let want = format!("{}-2", hex::encode(h.finalize()));
        assert_eq!(multipart_etag(&[E1, &format!("\"{E2}\"")]).unwrap(), want);
        assert!(multipart_etag(&["nothex"]).is_err());
        assert!(multipart_etag(&["abcd"]).is_err());
    }

    #[test]
    fn completion_rules() {
        let big = MIN_PART_SIZE;
        let stored = vec![part(1, big, E1), part(2, big - 1, E2), part(3, 10, E1)];
        assert_eq!(check_completion(&[req(1, E1), req(3, E1)], &stored).unwrap().len(), 2);
        assert_eq!(
            check_completion(&[], &stored),
            Err(MetaError::InvalidArgument("a completion must name at least one part".into()))
        );
        assert_eq!(check_completion(&[req(3, E1), req(1, E1)], &stored), Err(MetaError::InvalidPartOrder));
        assert_eq!(check_completion(&[req(1, E1), req(1, E1)], &stored), Err(MetaError::InvalidPartOrder));
        assert!(matches!(check_completion(&[req(1, E2)], &stored), Err(MetaError::InvalidPart(_))));
        assert!(matches!(check_completion(&[req(4, E1)], &stored), Err(MetaError::InvalidPart(_))));
        assert_eq!(check_completion(&[req(2, E2), req(3, E1)], &stored), Err(MetaError::EntityTooSmall(2)));
        // 1,100 parts of 5 GiB would be above 5 TiB.
        let huge: Vec<PartRecord> = (1..=1100).map(|n| part(n, 5 << 30, E1)).collect();
        let all: Vec<CompletedPart> = (1..=1100).map(|n| req(n, E1)).collect();
        assert_eq!(check_completion(&all, &huge), Err(MetaError::EntityTooLarge(1100 * (5 << 30))));
        assert_eq!(check_completion(&all[..1024], &huge).map(|c| c.len()), Ok(1024));
        assert_eq!(
            check_completion(&[req(1, &format!("\"{E1}\"")), req(2, E2)], &stored).unwrap().len(),
            2,
            "last part may be small"
        );
    }
}
