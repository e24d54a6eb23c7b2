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
            .filter_map(|a| a.get(computed).map(|v| pb::Checksum { algorithm: a.name().into(), value: v.clone() }))
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
