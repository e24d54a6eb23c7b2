//! The sixteen-lane MD5 compression with AVX-512F.
//!
//! Unsafe code, audited: the only unsafe operations are the 64-byte loads
//! and stores below, each through a pointer made from a reference to exactly
//! 64 bytes (`&[u8; 64]` or `&[u32; 16]`), so in bounds; unaligned access is
//! what `loadu`/`storeu` are for. `compress16` itself is unsafe only because
//! it needs AVX-512F; `Kernel::compress16` checks that before calling it.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512i, _mm512_add_epi32, _mm512_loadu_si512, _mm512_rol_epi32, _mm512_set1_epi32, _mm512_shuffle_i32x4,
    _mm512_storeu_si512, _mm512_ternarylogic_epi32, _mm512_unpackhi_epi32, _mm512_unpackhi_epi64,
    _mm512_unpacklo_epi32, _mm512_unpacklo_epi64,
};

use crate::kernel::{BLOCK_LEN, G, K, LaneStates, S};

/// What an idle lane reads.
static IDLE: [u8; BLOCK_LEN] = [0; BLOCK_LEN];

/// `ternarylogic` truth tables of MD5's four round functions of (b, c, d).
const F: i32 = 0xca; // b ? c : d
const GF: i32 = 0xe4; // d ? b : c
const H: i32 = 0x96; // b ^ c ^ d
const I: i32 = 0x39; // c ^ (b | !d)

/// Compresses `n` blocks of each of sixteen lanes (see `Kernel::compress16`;
/// lanes were checked to be empty or at least `n` blocks long).
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn compress16(states: &mut LaneStates, lanes: &[&[u8]; 16], n: usize) {
    let blocks: [&[[u8; BLOCK_LEN]]; 16] = std::array::from_fn(|l| lanes[l].as_chunks::<BLOCK_LEN>().0);
    let mut s = [load_words(&states[0]), load_words(&states[1]), load_words(&states[2]), load_words(&states[3])];
    for t in 0..n {
        let rows: [&[u8; BLOCK_LEN]; 16] = std::array::from_fn(|l| blocks[l].get(t).unwrap_or(&IDLE));
        let m = transpose(&rows);
        s = block(s, &m);
    }
    for (w, v) in s.into_iter().enumerate() {
        store_words(&mut states[w], v);
    }
}

#[target_feature(enable = "avx512f")]
fn load_words(words: &[u32; 16]) -> __m512i {
    // SAFETY: `words` is 64 readable bytes.
    unsafe { _mm512_loadu_si512(words.as_ptr().cast()) }
}

#[target_feature(enable = "avx512f")]
fn store_words(words: &mut [u32; 16], v: __m512i) {
    // SAFETY: `words` is 64 writable bytes.
    unsafe { _mm512_storeu_si512(words.as_mut_ptr().cast(), v) }
}

#[target_feature(enable = "avx512f")]
fn load_block(b: &[u8; BLOCK_LEN]) -> __m512i {
    // SAFETY: `b` is 64 readable bytes.
    unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
}

/// Turns sixteen blocks (one per lane) into sixteen message words (one
/// vector per word, lane `l` in element `l`): a 16×16 transpose of 32-bit
/// words in four shuffle stages.
#[target_feature(enable = "avx512f")]
fn transpose(rows: &[&[u8; BLOCK_LEN]; 16]) -> [__m512i; 16] {
    let r: [__m512i; 16] = std::array::from_fn(|l| load_block(rows[l]));
    // Stage 1: within each 128-bit group, interleave rows 2i and 2i+1.
    let mut a = r;
    for i in 0..8 {
        a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // Stage 2: b[4i + c], 128-bit group g, holds word 4g + c of rows
    // 4i..4i+3.
    let mut b = a;
    for i in 0..4 {
        b[4 * i] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
        b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
    }
    // Stages 3 and 4: gather the 128-bit groups of each word.
    let mut m = b;
    for c in 0..4 {
        let e0 = _mm512_shuffle_i32x4::<0x44>(b[c], b[4 + c]);
        let e1 = _mm512_shuffle_i32x4::<0xee>(b[c], b[4 + c]);
        let f0 = _mm512_shuffle_i32x4::<0x44>(b[8 + c], b[12 + c]);
        let f1 = _mm512_shuffle_i32x4::<0xee>(b[8 + c], b[12 + c]);
        m[c] = _mm512_shuffle_i32x4::<0x88>(e0, f0);
        m[4 + c] = _mm512_shuffle_i32x4::<0xdd>(e0, f0);
        m[8 + c] = _mm512_shuffle_i32x4::<0x88>(e1, f1);
        m[12 + c] = _mm512_shuffle_i32x4::<0xdd>(e1, f1);
    }
    m
}

/// One MD5 step: a = b + ((a + f(b, c, d) + K[i] + M[G[i]]) <<< S[i]).
macro_rules! step {
    ($f:expr, $m:ident, $a:ident, $b:ident, $c:ident, $d:ident, $i:expr) => {
        let t = _mm512_add_epi32(_mm512_add_epi32($a, _mm512_set1_epi32(K[$i] as i32)), $m[G[$i]]);
        let t = _mm512_add_epi32(t, _mm512_ternarylogic_epi32::<{ $f }>($b, $c, $d));
        $a = _mm512_add_epi32($b, _mm512_rol_epi32::<{ S[$i] as i32 }>(t));
    };
}

/// Four steps, the state's roles rotating.
macro_rules! quad {
    ($f:expr, $m:ident, $a:ident, $b:ident, $c:ident, $d:ident, $i:expr) => {
        step!($f, $m, $a, $b, $c, $d, $i);
        step!($f, $m, $d, $a, $b, $c, $i + 1);
        step!($f, $m, $c, $d, $a, $b, $i + 2);
        step!($f, $m, $b, $c, $d, $a, $i + 3);
    };
}

#[target_feature(enable = "avx512f")]
fn block(s: [__m512i; 4], m: &[__m512i; 16]) -> [__m512i; 4] {
    let [mut a, mut b, mut c, mut d] = s;
    quad!(F, m, a, b, c, d, 0);
    quad!(F, m, a, b, c, d, 4);
    quad!(F, m, a, b, c, d, 8);
    quad!(F, m, a, b, c, d, 12);
    quad!(GF, m, a, b, c, d, 16);
    quad!(GF, m, a, b, c, d, 20);
    quad!(GF, m, a, b, c, d, 24);
    quad!(GF, m, a, b, c, d, 28);
    quad!(H, m, a, b, c, d, 32);
    quad!(H, m, a, b, c, d, 36);
    quad!(H, m, a, b, c, d, 40);
    quad!(H, m, a, b, c, d, 44);
    quad!(I, m, a, b, c, d, 48);
    quad!(I, m, a, b, c, d, 52);
    quad!(I, m, a, b, c, d, 56);
    quad!(I, m, a, b, c, d, 60);
    [_mm512_add_epi32(s[0], a), _mm512_add_epi32(s[1], b), _mm512_add_epi32(s[2], c), _mm512_add_epi32(s[3], d)]
}
