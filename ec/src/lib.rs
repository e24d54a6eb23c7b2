//! Erasure coding for Tessera: pure functions over byte buffers, no I/O, no async.
//!
//! Owns: the [`ErasureCodec`] trait and its Reed–Solomon backends (each with a
//! stable [`CodecId`] recorded in every object record), the [`StripeLayout`]
//! that cuts an object into stripes and blocks, and the BLAKE3 block framing
//! that guards blocks at rest. Depends on no other Tessera crate.
//!
//! ```text
//!  object bytes ──► stripes of k·block_len ──► encode_stripe ──► k data + m parity blocks
//!                                                  │
//!                        keyed BLAKE3 per block ◄──┘   frame = [hash 32 B][block]
//!
//!  frames of ≥ k shards ──► verify each ──► decode_stripe ──► the stripe's true bytes
//!                           (bad ones are reported, never returned)
//! ```
//!
//! Shard `i` of an object is block `i` of every stripe, in stripe order.

mod codec;
mod error;
mod frame;
mod layout;
mod stripe;

pub use codec::{CodecId, ErasureCodec, new_codec};
pub use error::EcError;
pub use frame::{BlockAddress, HASH_LEN, block_hash, verify_frame};
pub use layout::{BLOCK_ALIGN, DEFAULT_STRIPE_SIZE, MAX_DATA_SHARDS, MAX_PARITY_SHARDS, StripeLayout};
pub use stripe::{DecodedStripe, EncodedStripe, FramedBlock, PieceId, StripeCoder};
