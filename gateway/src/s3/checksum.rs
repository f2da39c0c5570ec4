//! Integrity: MD5 (ETag, Content-MD5) and the S3 additional checksums, computed inline while
//! the body streams to the staging file.

use base64::Engine as _;
use md5::Digest as _;
use s3s::{s3_error, S3Result};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An S3 additional checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

pub const ALL_ALGOS: [Algo; 5] = [Algo::Crc32, Algo::Crc32c, Algo::Crc64Nvme, Algo::Sha1, Algo::Sha256];

impl Algo {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "CRC32" => Self::Crc32,
            "CRC32C" => Self::Crc32c,
            "CRC64NVME" => Self::Crc64Nvme,
            "SHA1" => Self::Sha1,
            "SHA256" => Self::Sha256,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The request/response header (and trailer) carrying this checksum.
    pub fn header(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    pub fn from_header(h: &str) -> Option<Self> {
        ALL_ALGOS.into_iter().find(|a| a.header().eq_ignore_ascii_case(h.trim()))
    }

    /// CRCs can be combined, so they support full-object multipart checksums.
    pub fn is_crc(self) -> bool {
        matches!(self, Self::Crc32 | Self::Crc32c | Self::Crc64Nvme)
    }

    fn raw_len(self) -> usize {
        match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64Nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }
}

enum Inner {
    Crc(crc_fast::Digest, usize),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

/// One additional checksum in progress.
pub struct Checksummer {
    algo: Algo,
    inner: Inner,
}

impl Checksummer {
    pub fn new(algo: Algo) -> Self {
        use crc_fast::CrcAlgorithm as C;
        let inner = match algo {
            Algo::Crc32 => Inner::Crc(crc_fast::Digest::new(C::Crc32IsoHdlc), 4),
            Algo::Crc32c => Inner::Crc(crc_fast::Digest::new(C::Crc32Iscsi), 4),
            Algo::Crc64Nvme => Inner::Crc(crc_fast::Digest::new(C::Crc64Nvme), 8),
            Algo::Sha1 => Inner::Sha1(sha1::Sha1::new()),
            Algo::Sha256 => Inner::Sha256(sha2::Sha256::new()),
        };
        Self { algo, inner }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.inner {
            Inner::Crc(d, _) => d.update(data),
            Inner::Sha1(d) => d.update(data),
            Inner::Sha256(d) => d.update(data),
        }
    }

    /// The raw digest bytes (CRCs big-endian, as S3 encodes them).
    pub fn finalize(self) -> (Algo, Vec<u8>) {
        let raw = match self.inner {
            Inner::Crc(d, 4) => (d.finalize() as u32).to_be_bytes().to_vec(),
            Inner::Crc(d, _) => d.finalize().to_be_bytes().to_vec(),
            Inner::Sha1(d) => d.finalize().to_vec(),
            Inner::Sha256(d) => d.finalize().to_vec(),
        };
        (self.algo, raw)
    }
}

/// MD5 plus an optional additional checksum over the same bytes.
pub struct BodyHasher {
    md5: md5::Md5,
    extra: Option<Checksummer>,
}

/// What a body hashed to.
#[derive(Debug, Clone)]
pub struct Digests {
    pub md5: [u8; 16],
    pub checksum: Option<(Algo, Vec<u8>)>,
}

impl BodyHasher {
    pub fn new(algo: Option<Algo>) -> Self {
        Self { md5: md5::Md5::new(), extra: algo.map(Checksummer::new) }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some(c) = &mut self.extra {
            c.update(data);
        }
    }

    pub fn finalize(self) -> Digests {
        Digests { md5: self.md5.finalize().into(), checksum: self.extra.map(Checksummer::finalize) }
    }
}

pub fn b64(raw: &[u8]) -> String {
    B64.encode(raw)
}

/// Decode a base64 checksum value sent by the client and check its length for the algorithm.
pub fn decode_checksum(algo: Algo, value: &str) -> S3Result<Vec<u8>> {
    match B64.decode(value.trim()) {
        Ok(raw) if raw.len() == algo.raw_len() => Ok(raw),
        _ => Err(s3_error!(InvalidRequest, "Value for {} header is invalid.", algo.header())),
    }
}

/// Decode Content-MD5 (base64 of 16 bytes) or answer InvalidDigest.
pub fn decode_content_md5(value: &str) -> S3Result<[u8; 16]> {
    match B64.decode(value.trim()) {
        Ok(raw) if raw.len() == 16 => Ok(raw.try_into().expect("16 bytes")),
        _ => Err(s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid.")),
    }
}

/// Verify the body's digests against what the client declared. Mismatch → BadDigest.
pub fn verify(d: &Digests, content_md5: Option<&[u8; 16]>, expected: Option<(Algo, &[u8])>) -> S3Result<()> {
    if let Some(m) = content_md5 {
        if m != &d.md5 {
            return Err(s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."));
        }
    }
    if let Some((algo, want)) = expected {
        match &d.checksum {
            Some((a, got)) if *a == algo && got.as_slice() == want => {}
            _ => {
                return Err(s3_error!(
                    BadDigest,
                    "The {} you specified did not match the calculated checksum.",
                    algo.name()
                ))
            }
        }
    }
    Ok(())
}

/// Composite multipart checksum: the checksum of the concatenated part checksums, `-N`.
pub fn composite(algo: Algo, parts: &[Vec<u8>]) -> String {
    let mut c = Checksummer::new(algo);
    for p in parts {
        c.update(p);
    }
    format!("{}-{}", b64(&c.finalize().1), parts.len())
}

pub fn hex(raw: &[u8]) -> String {
    hex::encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known vectors for "123456789" (the CRC catalogue's check input) and "abc".
    #[test]
    fn known_vectors() {
        let check = |algo, input: &[u8]| {
            let mut c = Checksummer::new(algo);
            c.update(input);
            hex(&c.finalize().1)
        };
        assert_eq!(check(Algo::Crc32, b"123456789"), "cbf43926");
        assert_eq!(check(Algo::Crc32c, b"123456789"), "e3069283");
        assert_eq!(check(Algo::Crc64Nvme, b"123456789"), "ae8b14860a799888");
        assert_eq!(check(Algo::Sha1, b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(check(Algo::Sha256, b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn verify_detects_mismatch() {
        let mut h = BodyHasher::new(Some(Algo::Crc32));
        h.update(b"hello");
        let d = h.finalize();
        let good = d.checksum.clone().unwrap().1;
        assert!(verify(&d, Some(&d.md5), Some((Algo::Crc32, &good))).is_ok());
        let bad_md5 = [0u8; 16];
        assert_eq!(verify(&d, Some(&bad_md5), None).unwrap_err().code().as_str(), "BadDigest");
        assert_eq!(verify(&d, None, Some((Algo::Crc32, &[0, 0, 0, 0]))).unwrap_err().code().as_str(), "BadDigest");
        assert_eq!(verify(&d, None, Some((Algo::Sha1, &[0; 20]))).unwrap_err().code().as_str(), "BadDigest");
        assert!(decode_checksum(Algo::Crc32, "AAAA").is_err());
        assert!(decode_content_md5("not base64!").is_err());
    }
}
