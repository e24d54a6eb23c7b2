//! MD5's compression function (RFC 1321), for one lane and for sixteen.
//!
//! The sixteen-lane form runs sixteen independent MD5 states side by side,
//! one per 32-bit lane: with AVX-512 every step is a handful of instructions
//! for all sixteen, which is where the engine's speed comes from. Without
//! AVX-512 the same call runs the one-lane function sixteen times.

/// The state every MD5 starts from.
pub const INITIAL_STATE: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// MD5 works on 64-byte blocks.
pub const BLOCK_LEN: usize = 64;

/// Sixteen MD5 states, word-major: `lanes[w][l]` is word `w` of lane `l`.
pub type LaneStates = [[u32; 16]; 4];

/// The additive constant of each step: ⌊|sin(i + 1)| · 2³²⌋.
pub(crate) const K: [u32; 64] = [
    0xd76a_a478,
    0xe8c7_b756,
    0x2420_70db,
    0xc1bd_ceee,
    0xf57c_0faf,
    0x4787_c62a,
    0xa830_4613,
    0xfd46_9501,
    0x6980_98d8,
    0x8b44_f7af,
    0xffff_5bb1,
    0x895c_d7be,
    0x6b90_1122,
    0xfd98_7193,
    0xa679_438e,
    0x49b4_0821,
    0xf61e_2562,
    0xc040_b340,
    0x265e_5a51,
    0xe9b6_c7aa,
    0xd62f_105d,
    0x0244_1453,
    0xd8a1_e681,
    0xe7d3_fbc8,
    0x21e1_cde6,
    0xc337_07d6,
    0xf4d5_0d87,
    0x455a_14ed,
    0xa9e3_e905,
    0xfcef_a3f8,
    0x676f_02d9,
    0x8d2a_4c8a,
    0xfffa_3942,
    0x8771_f681,
    0x6d9d_6122,
    0xfde5_380c,
    0xa4be_ea44,
    0x4bde_cfa9,
    0xf6bb_4b60,
    0xbebf_bc70,
    0x289b_7ec6,
    0xeaa1_27fa,
    0xd4ef_3085,
    0x0488_1d05,
    0xd9d4_d039,
    0xe6db_99e5,
    0x1fa2_7cf8,
    0xc4ac_5665,
    0xf429_2244,
    0x432a_ff97,
    0xab94_23a7,
    0xfc93_a039,
    0x655b_59c3,
    0x8f0c_cc92,
    0xffef_f47d,
    0x8584_5dd1,
    0x6fa8_7e4f,
    0xfe2c_e6e0,
    0xa301_4314,
    0x4e08_11a1,
    0xf753_7e82,
    0xbd3a_f235,
    0x2ad7_d2bb,
    0xeb86_d391,
];

/// The left rotation of each step.
pub(crate) const S: [u32; 64] = {
    const R: [[u32; 4]; 4] = [[7, 12, 17, 22], [5, 9, 14, 20], [4, 11, 16, 23], [6, 10, 15, 21]];
    let mut s = [0; 64];
    let mut i = 0;
    while i < 64 {
        s[i] = R[i / 16][i % 4];
        i += 1;
    }
    s
};

/// The message word each step adds.
pub(crate) const G: [usize; 64] = {
    let mut g = [0; 64];
    let mut i = 0;
    while i < 64 {
        g[i] = match i / 16 {
            0 => i,
            1 => (5 * i + 1) % 16,
            2 => (3 * i + 5) % 16,
            _ => (7 * i) % 16,
        };
        i += 1;
    }
    g
};

/// One block into one state.
pub fn compress(state: &mut [u32; 4], block: &[u8; BLOCK_LEN]) {
    let mut m = [0u32; 16];
    for (w, bytes) in m.iter_mut().zip(block.as_chunks::<4>().0) {
        *w = u32::from_le_bytes(*bytes);
    }
    let [mut a, mut b, mut c, mut d] = *state;
    for i in 0..64 {
        let f = match i / 16 {
            0 => (b & c) | (!b & d),
            1 => (b & d) | (c & !d),
            2 => b ^ c ^ d,
            _ => c ^ (b | !d),
        };
        let t = a.wrapping_add(f).wrapping_add(K[i]).wrapping_add(m[G[i]]);
        a = d;
        d = c;
        c = b;
        b = b.wrapping_add(t.rotate_left(S[i]));
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d]) {
        *s = s.wrapping_add(v);
    }
}

/// The final block(s) of a message: `tail` (under 64 bytes) is its last
/// bytes, `total_len` its length in bytes. Returns the one or two padded
/// blocks and how many of them there are.
pub fn final_blocks(tail: &[u8], total_len: u64) -> ([u8; 2 * BLOCK_LEN], usize) {
    debug_assert!(tail.len() < BLOCK_LEN);
    let mut out = [0u8; 2 * BLOCK_LEN];
    out[..tail.len()].copy_from_slice(tail);
    out[tail.len()] = 0x80;
    let blocks = if tail.len() < BLOCK_LEN - 8 { 1 } else { 2 };
    let end = blocks * BLOCK_LEN;
    out[end - 8..end].copy_from_slice(&total_len.wrapping_mul(8).to_le_bytes());
    (out, blocks)
}

/// The digest of a finished state.
pub fn digest(state: &[u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (chunk, w) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// A whole message's MD5 with the one-lane function (the reference the
/// engine is tested against, beside the `md-5` crate).
pub fn md5(data: &[u8]) -> [u8; 16] {
    let mut state = INITIAL_STATE;
    let (blocks, tail) = data.as_chunks::<BLOCK_LEN>();
    for b in blocks {
        compress(&mut state, b);
    }
    let (last, n) = final_blocks(tail, data.len() as u64);
    for b in last.as_chunks::<BLOCK_LEN>().0.iter().take(n) {
        compress(&mut state, b);
    }
    digest(&state)
}

/// How sixteen lanes are compressed on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512F: all sixteen lanes in each instruction.
    Avx512,
    /// The one-lane function, lane after lane.
    Portable,
    /// Panics: tests what streams see when the engine thread dies.
    #[cfg(test)]
    Failing,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Kernel::Avx512;
        }
        Kernel::Portable
    }

    /// Compresses `n` blocks of every lane: lane `l` reads `lanes[l]`, which
    /// holds at least `n` blocks, or is empty for an idle lane (whose state
    /// then changes meaninglessly).
    ///
    /// # Panics
    /// If a lane is neither empty nor `n` blocks long, or `Avx512` is asked
    /// of a CPU without it.
    pub fn compress16(self, states: &mut LaneStates, lanes: &[&[u8]; 16], n: usize) {
        for lane in lanes {
            assert!(lane.is_empty() || lane.len() >= n * BLOCK_LEN, "a lane shorter than the run");
        }
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                assert!(std::arch::is_x86_feature_detected!("avx512f"), "AVX-512F is not available");
                // SAFETY: the CPU supports AVX-512F (checked just above),
                // which is the only requirement of `compress16`.
                #[allow(unsafe_code)]
                unsafe {
                    crate::avx512::compress16(states, lanes, n)
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx512 => panic!("AVX-512F is not available"),
            #[cfg(test)]
            Kernel::Failing => panic!("the failing kernel, as asked"),
            Kernel::Portable => {
                for (l, lane) in lanes.iter().enumerate() {
                    if lane.is_empty() {
                        continue;
                    }
                    let mut s = [states[0][l], states[1][l], states[2][l], states[3][l]];
                    for b in &lane.as_chunks::<BLOCK_LEN>().0[..n] {
                        compress(&mut s, b);
                    }
                    for (w, v) in s.into_iter().enumerate() {
                        states[w][l] = v;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest as _;
    use rand::{Rng as _, RngCore as _, SeedableRng as _};

    #[test]
    fn constants_are_the_sines() {
        for (i, k) in K.iter().enumerate() {
            let want = (((i + 1) as f64).sin().abs() * 4_294_967_296.0).floor() as u32;
            assert_eq!(*k, want, "K[{i}]");
        }
    }

    #[test]
    fn one_lane_matches_rfc_1321_and_md5_crate() {
        // RFC 1321's test suite.
        let rfc = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in rfc {
            let got = md5(input.as_bytes());
            let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, want, "{input:?}");
        }
        let mut data = vec![0u8; 300];
        rand::rngs::StdRng::seed_from_u64(1).fill_bytes(&mut data);
        for len in 0..=data.len() {
            assert_eq!(md5(&data[..len]), <[u8; 16]>::from(md5::Md5::digest(&data[..len])), "len {len}");
        }
    }

    fn check_kernel(kernel: Kernel, seed: u64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for round in 0..20 {
            let n = rng.random_range(1..6usize);
            let mut datas: Vec<Vec<u8>> = Vec::new();
            for _ in 0..16 {
                // Some lanes idle, each busy one a different message.
                let len = if rng.random_bool(0.25) { 0 } else { n * BLOCK_LEN };
                let mut d = vec![0u8; len];
                rng.fill_bytes(&mut d);
                datas.push(d);
            }
            let mut states: LaneStates = [[0; 16]; 4];
            let mut starts = Vec::new();
            for l in 0..16 {
                let s: [u32; 4] = std::array::from_fn(|_| rng.next_u32());
                for (word, v) in states.iter_mut().zip(s) {
                    word[l] = v;
                }
                starts.push(s);
            }
            let lanes: [&[u8]; 16] = std::array::from_fn(|l| datas[l].as_slice());
            kernel.compress16(&mut states, &lanes, n);
            for l in 0..16 {
                if datas[l].is_empty() {
                    continue;
                }
                let mut want = starts[l];
                for b in datas[l].as_chunks::<BLOCK_LEN>().0 {
                    compress(&mut want, b);
                }
                let got = [states[0][l], states[1][l], states[2][l], states[3][l]];
                assert_eq!(got, want, "seed {seed} round {round} lane {l} ({kernel:?})");
            }
        }
    }

    #[test]
    fn sixteen_lanes_match_one_lane() {
        let seed = rand::rng().next_u64();
        eprintln!("seed {seed}");
        check_kernel(Kernel::Portable, seed);
        if Kernel::detect() == Kernel::Avx512 {
            check_kernel(Kernel::Avx512, seed);
        } else {
            eprintln!("no AVX-512F here: only the portable kernel was checked");
        }
    }

    #[test]
    #[should_panic(expected = "shorter than the run")]
    fn a_short_lane_is_refused() {
        let mut states: LaneStates = [[0; 16]; 4];
        let short = [0u8; 64];
        let mut lanes: [&[u8]; 16] = [&[]; 16];
        lanes[3] = &short;
        Kernel::detect().compress16(&mut states, &lanes, 2);
    }
}
