//! Stable 64-bit hashing. These functions decide where data lives, so their
//! output must never change between versions or platforms: no std `Hasher`.

use tessera_common::PgId;

/// The splitmix64 finalizer: a strong, cheap 64-bit mixer.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Hash of three words, for straw2 draws.
pub(crate) fn hash3(a: u64, b: u64, c: u64) -> u64 {
    mix64(mix64(mix64(a ^ 0x9e37_79b9_7f4a_7c15) ^ b) ^ c)
}

/// A stable hash of a byte string (names, object keys).
pub fn stable_hash64(bytes: &[u8]) -> u64 {
    let mut h = mix64(bytes.len() as u64 ^ 0x5851_f42d_4c95_7f2d);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = mix64(h ^ u64::from_le_bytes(w)).rotate_left(23);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    mix64(h ^ u64::from_le_bytes(tail) ^ 0xff51_afd7_ed55_8ccd)
}

/// The placement group of an object: `hash(bucket, key) mod pg_count`.
pub fn pg_of(bucket: &str, key: &str, pg_count: u32) -> PgId {
    let h = mix64(stable_hash64(bucket.as_bytes()) ^ stable_hash64(key.as_bytes()).rotate_left(17));
    PgId((h % u64::from(pg_count.max(1))) as u32)
}

/// The placement group of part `part` of an object: [`pg_of`] for a simple
/// object (part 0), and a group drawn from the part number too for a
/// multipart object's parts, so the parts of one large object spread over
/// the cluster's disks instead of all landing on the same k + m. Where a
/// body was placed is stored with it (its shard set's `pg`), so objects
/// written before keep being found where they are.
pub fn pg_of_part(bucket: &str, key: &str, part: u32, pg_count: u32) -> PgId {
    if part == 0 {
        return pg_of(bucket, key, pg_count);
    }
    let h = mix64(
        stable_hash64(bucket.as_bytes())
            ^ stable_hash64(key.as_bytes()).rotate_left(17)
            ^ mix64(u64::from(part) ^ 0x7061_7274).rotate_left(31),
    );
    PgId((h % u64::from(pg_count.max(1))) as u32)
}

/// The straw2 draw of an item with weight `weight` for (pg, item): the
/// logarithm of a uniform (0, 1] number divided by the weight. The largest
/// draw wins; for a fixed pg, item i wins with probability w_i / Σw.
pub fn straw2_draw(pg: u32, item: u64, weight: f64) -> f64 {
    // 53 random bits → u in (0, 1]; ln(u) in [-36.7, 0].
    let u = ((hash3(u64::from(pg), item, 0x7374_7261_7732) >> 11) + 1) as f64 / (1u64 << 53) as f64;
    det_ln(u) / weight
}

/// Natural logarithm from IEEE basic operations only, so every node on every
/// platform computes bit-identical draws (`f64::ln` may differ in the last
/// bit between libm versions). Valid for finite x > 0; error < 1e-15 relative.
pub(crate) fn det_ln(x: f64) -> f64 {
    const LN2: f64 = std::f64::consts::LN_2;
    const SQRT2: f64 = std::f64::consts::SQRT_2;
    // x = m · 2^e with m in [1, 2); x is a normal number here (≥ 2^-53).
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > SQRT2 {
        m /= 2.0;
        e += 1;
    }
    // ln(m) = 2·atanh(s), s = (m-1)/(m+1), |s| < 0.172: the series converges fast.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut k = 1.0;
    for _ in 0..12 {
        sum += term / k;
        term *= s2;
        k += 2.0;
    }
    2.0 * sum + e as f64 * LN2
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded when the hash was introduced (2026-11). Never edit.
    const FROZEN: [u64; 4] =
        [0x4582_2872_862a_0640, 0x426f_438b_e7ee_9bd0, 0x5bf8_b58d_e8b4_c9be, 0xb2e4_d0c0_ee63_7e8a];
    const FROZEN_PG: PgId = PgId(75);
    const FROZEN_DRAW: u64 = 0xbfe5_15b3_4546_0144;

    #[test]
    fn hashes_are_frozen() {
        // These values decide where data lives. If this test fails, an
        // upgrade would move data: change the code back, not the numbers.
        let got = [stable_hash64(b""), stable_hash64(b"a"), stable_hash64(b"abcdefgh"), stable_hash64(b"abcdefgh\0")];
        assert_eq!(got, FROZEN);
        assert_eq!(pg_of("bucket", "key", 1024), FROZEN_PG);
        assert_eq!(straw2_draw(7, 42, 1.0).to_bits(), FROZEN_DRAW);
    }

    #[test]
    fn det_ln_matches_ln() {
        for i in 1..100_000u64 {
            let x = (i as f64 / 100_000.0).powi(3);
            let (a, b) = (det_ln(x), x.ln());
            assert!((a - b).abs() <= 2e-15 * b.abs().max(1.0), "{x}: {a} vs {b}");
        }
        assert_eq!(det_ln(1.0), 0.0);
        assert!((det_ln(1.0 / (1u64 << 53) as f64) + 36.7368005696771).abs() < 1e-12);
    }

    #[test]
    fn pgs_spread_evenly() {
        let n = 256u32;
        let mut counts = vec![0u32; n as usize];
        for i in 0..256_000 {
            counts[pg_of("videos", &format!("seg-{i:06}.ts"), n).0 as usize] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 850 && *max < 1150, "min {min} max {max}");
    }

    #[test]
    fn the_parts_of_one_object_spread_over_groups() {
        let n = 256u32;
        assert_eq!(pg_of_part("videos", "movie.mp4", 0, n), pg_of("videos", "movie.mp4", n));
        let mut counts = vec![0u32; n as usize];
        for part in 1..=10_000 {
            counts[pg_of_part("videos", "movie.mp4", part, n).0 as usize] += 1;
        }
        let used = counts.iter().filter(|c| **c > 0).count();
        let max = counts.iter().max().unwrap();
        assert!(used == n as usize && *max < 70, "10,000 parts over {used} groups, at most {max} in one");
        let other: Vec<PgId> = (1..=50).map(|p| pg_of_part("videos", "other.mp4", p, n)).collect();
        let mine: Vec<PgId> = (1..=50).map(|p| pg_of_part("videos", "movie.mp4", p, n)).collect();
        assert_ne!(other, mine, "objects differ in their parts' groups");
    }

    #[test]
    fn straw2_is_weight_proportional() {
        let weights = [1.0, 2.0, 3.0, 4.0];
        let mut wins = [0u32; 4];
        for pg in 0..200_000u32 {
            let best = (0..4)
                .max_by(|&a, &b| {
                    straw2_draw(pg, a as u64, weights[a]).total_cmp(&straw2_draw(pg, b as u64, weights[b]))
                })
                .unwrap();
            wins[best] += 1;
        }
        for (i, w) in weights.iter().enumerate() {
            let share = f64::from(wins[i]) / 200_000.0;
            assert!((share - w / 10.0).abs() < 0.01, "item {i}: {share}");
        }
    }
}
