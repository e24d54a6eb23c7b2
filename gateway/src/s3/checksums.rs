//! Checksums a request declares, computes or sends in its trailer.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Alg {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

pub(super) const ALGS: [Alg; 5] = [Alg::Crc32, Alg::Crc32c, Alg::Crc64Nvme, Alg::Sha1, Alg::Sha256];

impl Alg {
    pub(super) fn name(self) -> &'static str {
        match self {
            Alg::Crc32 => "CRC32",
            Alg::Crc32c => "CRC32C",
            Alg::Crc64Nvme => "CRC64NVME",
            Alg::Sha1 => "SHA1",
            Alg::Sha256 => "SHA256",
        }
    }

    pub(super) fn header(self) -> &'static str {
        match self {
            Alg::Crc32 => "x-amz-checksum-crc32",
            Alg::Crc32c => "x-amz-checksum-crc32c",
            Alg::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Alg::Sha1 => "x-amz-checksum-sha1",
            Alg::Sha256 => "x-amz-checksum-sha256",
        }
    }

    pub(super) fn from_name(s: &str) -> Option<Alg> {
        ALGS.into_iter().find(|a| a.name().eq_ignore_ascii_case(s))
    }

    pub(super) fn from_header(s: &str) -> Option<Alg> {
        ALGS.into_iter().find(|a| a.header().eq_ignore_ascii_case(s.trim()))
    }

    pub(super) fn get(self, c: &Checksum) -> Option<&String> {
        match self {
            Alg::Crc32 => c.checksum_crc32.as_ref(),
            Alg::Crc32c => c.checksum_crc32c.as_ref(),
            Alg::Crc64Nvme => c.checksum_crc64nvme.as_ref(),
            Alg::Sha1 => c.checksum_sha1.as_ref(),
            Alg::Sha256 => c.checksum_sha256.as_ref(),
        }
    }
}

/// The checksums a request asks for: values in headers, an algorithm to
/// compute, and checksums that arrive in the trailer.
#[derive(Default)]
pub(super) struct ChecksumPlan {
    pub(super) algs: Vec<Alg>,
    pub(super) expected: Vec<(Alg, String)>,
    pub(super) trailer: Vec<Alg>,
    pub(super) md5: Option<[u8; 16]>,
}

impl ChecksumPlan {
    pub(super) fn from_request(headers: &HeaderMap, algorithm: Option<&ChecksumAlgorithm>) -> S3Result<Self> {
        let mut p = ChecksumPlan::default();
        for a in ALGS {
            if let Some(v) = headers.get(a.header()) {
                let v = v.to_str().map_err(|_| s3_error!(InvalidRequest, "bad {} header", a.header()))?;
                p.expected.push((a, v.to_owned()));
                p.algs.push(a);
            }
        }
        if let Some(t) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
            for name in t.split(',') {
                match Alg::from_header(name) {
                    Some(a) => {
                        p.trailer.push(a);
                        p.algs.push(a);
                    }
                    None => return Err(s3_error!(InvalidRequest, "unsupported trailer {name}")),
                }
            }
        }
        if let Some(a) = algorithm {
            let a = Alg::from_name(a.as_str())
                .ok_or_else(|| s3_error!(InvalidRequest, "unsupported checksum algorithm {}", a.as_str()))?;
            p.algs.push(a);
        }
        if let Some(m) = headers.get("content-md5") {
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(m.as_bytes())
                .ok()
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))?;
            p.md5 = Some(raw);
        }
        p.algs.sort_by_key(|a| a.name());
        p.algs.dedup();
        Ok(p)
    }

    /// Computes `alg` too (an upload's algorithm for each of its parts).
    pub(super) fn also(&mut self, alg: Option<Alg>) {
        if let Some(a) = alg
            && !self.algs.contains(&a)
        {
            self.algs.push(a);
            self.algs.sort_by_key(|a| a.name());
        }
    }

    pub(super) fn hasher(&self) -> s3s::checksum::ChecksumHasher {
        use s3s::crypto::Checksum as _;
        let mut h = s3s::checksum::ChecksumHasher::default();
        for a in &self.algs {
            match a {
                Alg::Crc32 => h.crc32 = Some(s3s::crypto::Crc32::new()),
                Alg::Crc32c => h.crc32c = Some(s3s::crypto::Crc32c::new()),
                Alg::Crc64Nvme => h.crc64nvme = Some(s3s::crypto::Crc64Nvme::new()),
                Alg::Sha1 => h.sha1 = Some(s3s::crypto::Sha1::new()),
                Alg::Sha256 => h.sha256 = Some(s3s::crypto::Sha256::new()),
            }
        }
        h
    }

    /// Checks what the client declared against what was computed; returns
    /// the checksums to store.
    pub(super) fn verify(
        &self,
        md5: &[u8; 16],
        computed: &Checksum,
        trailers: Option<&s3s::TrailingHeaders>,
    ) -> S3Result<Vec<pb::Checksum>> {
        if self.md5.is_some_and(|m| &m != md5) {
            return Err(s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."));
        }
        let mut expected = self.expected.clone();
        if !self.trailer.is_empty() {
            let got = trailers.and_then(|t| t.take());
            for a in &self.trailer {
                let v = got.as_ref().and_then(|h| h.get(a.header())).and_then(|v| v.to_str().ok());
                match v {
                    Some(v) => expected.push((*a, v.trim().to_owned())),
                    None => {
                        return Err(s3_error!(
                            InvalidRequest,
                            "the trailer {} announced in x-amz-trailer is missing",
                            a.header()
                        ));
                    }
                }
            }
        }
        for (a, want) in &expected {
            if a.get(computed) != Some(want) {
                return Err(s3_error!(
                    BadDigest,
                    "The {} you specified did not match the calculated checksum.",
                    a.name()
                ));
            }
        }
        Ok(self
            .algs
            .iter()
            .filter_map(|a| {
                a.get(computed).map(|v| pb::Checksum {
                    algorithm: a.name().into(),
                    value: v.clone(),
                    checksum_type: String::new(),
                })
            })
            .collect())
    }
}

pub(super) fn set_checksums(c: &[pb::Checksum], out: &mut Checksum) {
    for s in c {
        match Alg::from_name(&s.algorithm) {
            Some(Alg::Crc32) => out.checksum_crc32 = Some(s.value.clone()),
            Some(Alg::Crc32c) => out.checksum_crc32c = Some(s.value.clone()),
            Some(Alg::Crc64Nvme) => out.checksum_crc64nvme = Some(s.value.clone()),
            Some(Alg::Sha1) => out.checksum_sha1 = Some(s.value.clone()),
            Some(Alg::Sha256) => out.checksum_sha256 = Some(s.value.clone()),
            None => {}
        }
    }
}

/// Sets the five `checksum_*` fields of an S3 output from stored checksums.
macro_rules! copy_checksums {
    ($out:expr, $sums:expr) => {{
        let c = checksum_struct($sums);
        $out.checksum_crc32 = c.checksum_crc32;
        $out.checksum_crc32c = c.checksum_crc32c;
        $out.checksum_crc64nvme = c.checksum_crc64nvme;
        $out.checksum_sha1 = c.checksum_sha1;
        $out.checksum_sha256 = c.checksum_sha256;
    }};
}

pub(super) fn checksum_struct(c: &[pb::Checksum]) -> Checksum {
    let mut out = Checksum::default();
    set_checksums(c, &mut out);
    out
}

/// `COMPOSITE` or `FULL_OBJECT`, as stored and answered.
pub(super) const COMPOSITE: &str = ChecksumType::COMPOSITE;
pub(super) const FULL_OBJECT: &str = ChecksumType::FULL_OBJECT;

/// The checksum type of a multipart upload created with `alg` and asked
/// for `asked` (`x-amz-checksum-type`), as S3 allows them: CRC64NVME only
/// of the full object, SHA-1 and SHA-256 only composite, CRC32 and CRC32C
/// either (composite unless asked). Empty without an algorithm.
pub(super) fn upload_checksum_type(alg: Option<Alg>, asked: Option<&ChecksumType>) -> S3Result<&'static str> {
    let asked = asked.map(|t| t.as_str());
    let Some(alg) = alg else {
        return match asked {
            None => Ok(""),
            Some(_) => Err(s3_error!(InvalidRequest, "x-amz-checksum-type needs x-amz-checksum-algorithm")),
        };
    };
    match (alg, asked) {
        (Alg::Crc64Nvme, None) => Ok(FULL_OBJECT),
        (_, None) => Ok(COMPOSITE),
        (Alg::Crc64Nvme, Some(t)) if t.eq_ignore_ascii_case(FULL_OBJECT) => Ok(FULL_OBJECT),
        (Alg::Sha1 | Alg::Sha256, Some(t)) if t.eq_ignore_ascii_case(COMPOSITE) => Ok(COMPOSITE),
        (Alg::Crc32 | Alg::Crc32c, Some(t)) if t.eq_ignore_ascii_case(COMPOSITE) => Ok(COMPOSITE),
        (Alg::Crc32 | Alg::Crc32c, Some(t)) if t.eq_ignore_ascii_case(FULL_OBJECT) => Ok(FULL_OBJECT),
        (a, Some(t)) => {
            Err(s3_error!(InvalidRequest, "The {} checksum algorithm does not support the {t} checksum type", a.name()))
        }
    }
}

fn b64(raw: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn unb64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()
}

/// The checksum of a multipart object made of `parts` (each its size and
/// its `alg` checksum, in base64, in the object's order):
/// - composite: `alg` over the parts' raw checksums one after the other,
///   then `-<parts>`, as S3 makes it;
/// - full object (CRCs only): the parts' CRCs combined into the CRC of all
///   the bytes, without reading them again.
///
/// `None` when a part's checksum does not decode.
pub(super) fn multipart_checksum(alg: Alg, checksum_type: &str, parts: &[(u64, &str)]) -> Option<String> {
    use s3s::crypto::Checksum as _;
    let raws: Vec<Vec<u8>> = parts.iter().map(|(_, v)| unb64(v)).collect::<Option<_>>()?;
    if checksum_type == FULL_OBJECT {
        let (crc_alg, width) = match alg {
            Alg::Crc32 => (crc_fast::CrcAlgorithm::Crc32IsoHdlc, 4),
            Alg::Crc32c => (crc_fast::CrcAlgorithm::Crc32Iscsi, 4),
            Alg::Crc64Nvme => (crc_fast::CrcAlgorithm::Crc64Nvme, 8),
            Alg::Sha1 | Alg::Sha256 => return None,
        };
        let mut acc: Option<u64> = None;
        for ((size, _), raw) in parts.iter().zip(&raws) {
            if raw.len() != width {
                return None;
            }
            let mut be = [0u8; 8];
            be[8 - width..].copy_from_slice(raw);
            let crc = u64::from_be_bytes(be);
            acc = Some(match acc {
                None => crc,
                Some(a) => crc_fast::checksum_combine(crc_alg, a, crc, *size),
            });
        }
        let v = acc?.to_be_bytes();
        return Some(b64(&v[8 - width..]));
    }
    let joined: Vec<u8> = raws.concat();
    let digest = match alg {
        Alg::Crc32 => s3s::crypto::Crc32::checksum(&joined).to_vec(),
        Alg::Crc32c => s3s::crypto::Crc32c::checksum(&joined).to_vec(),
        Alg::Crc64Nvme => s3s::crypto::Crc64Nvme::checksum(&joined).to_vec(),
        Alg::Sha1 => s3s::crypto::Sha1::checksum(&joined).to_vec(),
        Alg::Sha256 => s3s::crypto::Sha256::checksum(&joined).to_vec(),
    };
    Some(format!("{}-{}", b64(&digest), parts.len()))
}

/// The type an object's checksum is answered with.
pub(super) fn checksum_type_of(c: &[pb::Checksum]) -> Option<ChecksumType> {
    let first = c.first()?;
    let t = if first.checksum_type.is_empty() { FULL_OBJECT } else { first.checksum_type.as_str() };
    Some(ChecksumType::from(t.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::crypto::Checksum as _;

    fn parts_of(data: &[u8], cuts: &[usize], one: impl Fn(&[u8]) -> Vec<u8>) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut at = 0;
        for &end in cuts.iter().chain(std::iter::once(&data.len())) {
            out.push(((end - at) as u64, b64(&one(&data[at..end]))));
            at = end;
        }
        out
    }

    #[test]
    fn full_object_crcs_combine_to_the_crc_of_all_the_bytes() {
        let data: Vec<u8> = (0..200_003u32).map(|i| (i * 31 % 251) as u8).collect();
        let cuts = [65_536, 65_537, 150_000];
        type One = fn(&[u8]) -> Vec<u8>;
        let algs: [(Alg, One); 3] = [
            (Alg::Crc32, |d| s3s::crypto::Crc32::checksum(d).to_vec()),
            (Alg::Crc32c, |d| s3s::crypto::Crc32c::checksum(d).to_vec()),
            (Alg::Crc64Nvme, |d| s3s::crypto::Crc64Nvme::checksum(d).to_vec()),
        ];
        for (alg, one) in algs {
            let parts = parts_of(&data, &cuts, one);
            let refs: Vec<(u64, &str)> = parts.iter().map(|(n, v)| (*n, v.as_str())).collect();
            assert_eq!(multipart_checksum(alg, FULL_OBJECT, &refs), Some(b64(&one(&data))), "{}", alg.name());
        }
    }

    #[test]
    fn composite_checksums_hash_the_parts_checksums() {
        // SHA-256 of the two parts' raw SHA-256 digests, then "-2".
        let (a, b) = (b"first part".as_slice(), b"second".as_slice());
        let (da, db) = (s3s::crypto::Sha256::checksum(a), s3s::crypto::Sha256::checksum(b));
        let want = format!("{}-2", b64(&s3s::crypto::Sha256::checksum(&[da, db].concat())));
        let parts = [(a.len() as u64, b64(&da)), (b.len() as u64, b64(&db))];
        let refs: Vec<(u64, &str)> = parts.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(multipart_checksum(Alg::Sha256, COMPOSITE, &refs), Some(want));
        // A SHA cannot be combined into a full-object checksum; junk does not decode.
        assert_eq!(multipart_checksum(Alg::Sha256, FULL_OBJECT, &refs), None);
        assert_eq!(multipart_checksum(Alg::Crc32, COMPOSITE, &[(1, "%%%")]), None);
    }

    #[test]
    fn checksum_types_as_s3_allows_them() {
        let t = |s: &str| ChecksumType::from(s.to_owned());
        assert_eq!(upload_checksum_type(None, None).unwrap(), "");
        assert!(upload_checksum_type(None, Some(&t(COMPOSITE))).is_err());
        assert_eq!(upload_checksum_type(Some(Alg::Crc32), None).unwrap(), COMPOSITE);
        assert_eq!(upload_checksum_type(Some(Alg::Crc32c), Some(&t(FULL_OBJECT))).unwrap(), FULL_OBJECT);
        assert_eq!(upload_checksum_type(Some(Alg::Crc64Nvme), None).unwrap(), FULL_OBJECT);
        assert!(upload_checksum_type(Some(Alg::Crc64Nvme), Some(&t(COMPOSITE))).is_err());
        assert!(upload_checksum_type(Some(Alg::Sha256), Some(&t(FULL_OBJECT))).is_err());
        assert_eq!(upload_checksum_type(Some(Alg::Sha1), None).unwrap(), COMPOSITE);
    }
}
