//! Versioned encoding of stored values: one format byte, then protobuf.

use prost::Message;

use crate::MetaError;

/// Format byte of values written by this version.
const FORMAT_V1: u8 = 1;

/// Encodes a record for storage.
pub(crate) fn encode<M: Message>(m: &M) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + m.encoded_len());
    out.push(FORMAT_V1);
    m.encode(&mut out).unwrap_or_else(|e| unreachable!("a Vec grows as needed: {e}"));
    out
}

/// Decodes a stored record of any known format version.
pub(crate) fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, MetaError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => M::decode(body).map_err(|e| MetaError::Storage(format!("undecodable record: {e}"))),
        Some((v, _)) => Err(MetaError::Storage(format!("record format {v} is newer than this build"))),
        None => Err(MetaError::Storage("empty record".into())),
    }
}
