//! The checksums of a multipart completion: each part's checksum the
//! client declares is checked against the one stored at upload, the
//! object's checksum (composite or full object, as the upload was created)
//! is made from the parts' and checked against the one declared for the
//! whole object.

use std::collections::HashMap;

use super::*;

/// The checksums a completion names for one part.
pub(super) fn part_checksums(p: &CompletedPart) -> Vec<(Alg, String)> {
    let c = Checksum {
        checksum_crc32: p.checksum_crc32.clone(),
        checksum_crc32c: p.checksum_crc32c.clone(),
        checksum_crc64nvme: p.checksum_crc64nvme.clone(),
        checksum_sha1: p.checksum_sha1.clone(),
        checksum_sha256: p.checksum_sha256.clone(),
        checksum_type: None,
    };
    ALGS.into_iter().filter_map(|a| a.get(&c).map(|v| (a, v.clone()))).collect()
}

/// The checksums a completion declares for the whole object (headers).
pub(super) fn whole_checksums(i: &CompleteMultipartUploadInput) -> Vec<(Alg, String)> {
    let c = Checksum {
        checksum_crc32: i.checksum_crc32.clone(),
        checksum_crc32c: i.checksum_crc32c.clone(),
        checksum_crc64nvme: i.checksum_crc64nvme.clone(),
        checksum_sha1: i.checksum_sha1.clone(),
        checksum_sha256: i.checksum_sha256.clone(),
        checksum_type: None,
    };
    ALGS.into_iter().filter_map(|a| a.get(&c).map(|v| (a, v.clone()))).collect()
}

fn stored_sum(p: &pb::PartRecord, a: Alg) -> Option<&str> {
    p.checksums.iter().find(|s| Alg::from_name(&s.algorithm) == Some(a)).map(|s| s.value.as_str())
}

impl Tessera {
    /// Every part record of an upload, by number.
    async fn upload_parts(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<HashMap<u32, pb::PartRecord>> {
        let mut out = HashMap::new();
        let mut after = 0;
        loop {
            let req = pb::ListPartsRequest {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
                after_part: after,
                max_parts: 1000,
            };
            let r = self.cluster.meta().list_parts(req).await.map_err(unavailable)?;
            if let Some(f) = &r.failure {
                return Err(from_failure(f));
            }
            after = r.parts.last().map_or(after, |p| p.number);
            let more = r.is_truncated && !r.parts.is_empty();
            out.extend(r.parts.into_iter().map(|p| (p.number, p)));
            if !more {
                return Ok(out);
            }
        }
    }

    /// The object checksum to store for completing `completed`, after the
    /// client's declarations are checked: a part checksum that differs from
    /// the stored one is `InvalidPart`, a whole-object one that differs
    /// from what the parts make is `BadDigest`, a checksum type other than
    /// the upload's is `InvalidRequest`. Empty when the upload has no
    /// checksum algorithm (or a part lacks its checksum: copied parts),
    /// and for a completion retried after success (the command answers it).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn completion_checksums(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        completed: &[pb::CompletedPart],
        declared: &[Vec<(Alg, String)>],
        whole: &[(Alg, String)],
        asked_type: Option<&ChecksumType>,
    ) -> S3Result<Vec<pb::Checksum>> {
        let up = match self.require_upload(bucket, key, upload_id).await {
            Ok(up) => up,
            Err(e) if *e.code() == S3ErrorCode::NoSuchUpload => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if let Some(t) = asked_type
            && !t.as_str().eq_ignore_ascii_case(&up.checksum_type)
        {
            return Err(s3_error!(
                InvalidRequest,
                "The upload was created using the {} checksum mode; the completion must use the same",
                if up.checksum_type.is_empty() { "no" } else { up.checksum_type.as_str() }
            ));
        }
        let stored = self.upload_parts(bucket, key, upload_id).await?;
        // The part named by number and ETag (otherwise the command answers InvalidPart).
        let named = |c: &pb::CompletedPart| {
            stored.get(&c.number).filter(|p| p.etag.trim_matches('"') == c.etag.trim_matches('"'))
        };
        for (c, sums) in completed.iter().zip(declared) {
            let Some(p) = named(c) else { continue };
            for (a, v) in sums {
                if stored_sum(p, *a) != Some(v.trim()) {
                    return Err(s3_error!(
                        InvalidPart,
                        "The {} checksum of part {} does not match the one it was uploaded with",
                        a.name(),
                        c.number
                    ));
                }
            }
        }
        let Some(alg) = Alg::from_name(&up.checksum_algorithm) else {
            if let Some((a, _)) = whole.first() {
                return Err(s3_error!(
                    InvalidRequest,
                    "A {} checksum of the object needs an upload created with that checksum algorithm",
                    a.name()
                ));
            }
            return Ok(Vec::new());
        };
        let mut parts = Vec::with_capacity(completed.len());
        for c in completed {
            let Some(v) = named(c).and_then(|p| stored_sum(p, alg).map(|v| (p.size, v))) else {
                return Ok(Vec::new());
            };
            parts.push(v);
        }
        let Some(value) = multipart_checksum(alg, &up.checksum_type, &parts) else { return Ok(Vec::new()) };
        for (a, v) in whole {
            // A composite value may be declared with or without its "-<parts>".
            let bare = value.split('-').next().unwrap_or(&value);
            if *a != alg || (v.trim() != value && v.trim() != bare) {
                return Err(s3_error!(
                    BadDigest,
                    "The {} you specified for the object did not match what its parts make.",
                    a.name()
                ));
            }
        }
        Ok(vec![pb::Checksum { algorithm: alg.name().to_owned(), value, checksum_type: up.checksum_type }])
    }
}
