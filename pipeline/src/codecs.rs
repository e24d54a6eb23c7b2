//! The codec cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tessera_ec::{CodecId, EcError, ErasureCodec};

/// (codec id, k, m).
type CodecKey = (u32, usize, usize);

/// Codecs by (id, k, m), built once: building a Reed–Solomon matrix per
/// request would be waste.
#[derive(Debug, Default)]
pub struct Codecs {
    cache: Mutex<HashMap<CodecKey, Arc<dyn ErasureCodec>>>,
}

impl Codecs {
    /// The codec `id` for (k, m).
    pub fn get(&self, id: u32, k: usize, m: usize) -> Result<Arc<dyn ErasureCodec>, EcError> {
        let mut cache = self.cache.lock().map_err(|_| EcError::Backend("codec cache poisoned".into()))?;
        if let Some(c) = cache.get(&(id, k, m)) {
            return Ok(c.clone());
        }
        let codec_id = CodecId::from_u16(u16::try_from(id).map_err(|_| EcError::UnknownCodec(u16::MAX))?)?;
        let c = tessera_ec::new_codec(codec_id, k, m)?;
        cache.insert((id, k, m), c.clone());
        Ok(c)
    }
}
