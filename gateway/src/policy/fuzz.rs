//! Randomized checks of the policy code against a simple reference: the
//! wildcard matcher against a naive recursive one, the evaluator's decision
//! against the rule written out plainly (a matching Deny wins, then a
//! matching Allow, else the default), and the parser against mangled
//! documents (it answers, it never panics). Bounded, seeded: the seed is
//! printed; `TESSERA_SEED=<seed>` replays a run.

use std::collections::HashMap;

use super::eval::wildcard;
use super::*;

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

fn seed() -> u64 {
    let s = std::env::var("TESSERA_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64)
    });
    println!("seed = {s} (replay with TESSERA_SEED={s})");
    s
}

/// The reference matcher: plain recursion over the pattern.
fn naive(p: &[char], t: &[char]) -> bool {
    match (p.first(), t.first()) {
        (None, None) => true,
        (Some('*'), _) => naive(&p[1..], t) || (!t.is_empty() && naive(p, &t[1..])),
        (Some('?'), Some(_)) => naive(&p[1..], &t[1..]),
        (Some(a), Some(b)) if a == b => naive(&p[1..], &t[1..]),
        _ => false,
    }
}

#[test]
fn wildcards_agree_with_the_reference() {
    let mut r = Rng(seed());
    for _ in 0..20_000 {
        let p: String = (0..r.below(7)).map(|_| ['a', 'b', '*', '?'][r.below(4)]).collect();
        let t: String = (0..r.below(8)).map(|_| ['a', 'b'][r.below(2)]).collect();
        let want = naive(&p.chars().collect::<Vec<_>>(), &t.chars().collect::<Vec<_>>());
        assert_eq!(wildcard(&p, &t, false), want, "{p:?} ~ {t:?}");
    }
}

const ACTIONS: [&str; 6] = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:Get*", "s3:*"];
const RESOURCES: [&str; 5] = ["arn:aws:s3:::b/*", "arn:aws:s3:::b/a*", "arn:aws:s3:::b", "arn:aws:s3:::b/?x", "*"];
const PRINCIPALS: [&str; 3] = ["*", "u1", "u2"];

/// One random statement: the JSON and what it stands for.
struct Gen {
    deny: bool,
    not_action: bool,
    actions: Vec<&'static str>,
    not_resource: bool,
    resources: Vec<&'static str>,
    principals: Vec<&'static str>,
    not_principal: bool,
}

fn statement(r: &mut Rng) -> Gen {
    let n = |r: &mut Rng| 1 + r.below(2);
    Gen {
        deny: r.below(3) == 0,
        not_action: r.below(5) == 0,
        actions: (0..n(r)).map(|_| r.pick(&ACTIONS)).collect(),
        not_resource: r.below(5) == 0,
        resources: (0..n(r)).map(|_| r.pick(&RESOURCES)).collect(),
        principals: (0..n(r)).map(|_| r.pick(&PRINCIPALS)).collect(),
        not_principal: r.below(6) == 0,
    }
}

fn json(g: &Gen) -> String {
    let list = |v: &[&str]| format!("[{}]", v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(","));
    let who: Vec<&str> = g.principals.clone();
    let principal = if who.contains(&"*") { r#""*""#.to_owned() } else { format!(r#"{{"AWS":{}}}"#, list(&who)) };
    format!(
        r#"{{"Effect":"{}","{}":{},"{}":{},"{}":{}}}"#,
        if g.deny { "Deny" } else { "Allow" },
        if g.not_principal { "NotPrincipal" } else { "Principal" },
        principal,
        if g.not_action { "NotAction" } else { "Action" },
        list(&g.actions),
        if g.not_resource { "NotResource" } else { "Resource" },
        list(&g.resources),
    )
}

/// The reference decision for one statement.
fn applies(g: &Gen, who: Option<&str>, action: &str, resource: &str) -> bool {
    let named = g.principals.contains(&"*") || who.is_some_and(|w| g.principals.contains(&w));
    let lower = |s: &str| s.to_ascii_lowercase().chars().collect::<Vec<_>>();
    let act = g.actions.iter().any(|a| naive(&lower(a), &lower(action))) != g.not_action;
    let res = g.resources.iter().any(|p| naive(&p.chars().collect::<Vec<_>>(), &resource.chars().collect::<Vec<_>>()))
        != g.not_resource;
    (named != g.not_principal) && act && res
}

#[test]
fn decisions_agree_with_the_reference() {
    let mut r = Rng(seed());
    let context = HashMap::new();
    for _ in 0..3_000 {
        let gens: Vec<Gen> = (0..1 + r.below(4)).map(|_| statement(&mut r)).collect();
        let doc = format!(
            r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
            gens.iter().map(json).collect::<Vec<_>>().join(",")
        );
        let policy = Policy::parse(&doc, Kind::Bucket, Some("b")).unwrap_or_else(|e| panic!("{e}: {doc}"));
        for _ in 0..10 {
            let who = [None, Some("u1"), Some("u2"), Some("u3")][r.below(4)];
            let action = r.pick(&["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"]);
            let resource = r.pick(&["arn:aws:s3:::b/ax", "arn:aws:s3:::b/zx", "arn:aws:s3:::b", "arn:aws:s3:::b/a"]);
            let want = if gens.iter().any(|g| g.deny && applies(g, who, action, resource)) {
                Decision::Deny
            } else if gens.iter().any(|g| !g.deny && applies(g, who, action, resource)) {
                Decision::Allow
            } else {
                Decision::Default
            };
            let principal = match who {
                Some(name) => Principal::User { name, root: false },
                None => Principal::Anonymous,
            };
            let got = evaluate(&[&policy], &Request { principal, action, resource, context: &context });
            assert_eq!(got, want, "{doc}\n{who:?} {action} {resource}");
        }
    }
}

#[test]
fn mangled_documents_never_panic_the_parser() {
    let mut r = Rng(seed());
    let base = r#"{"Version":"2012-10-17","Statement":[{"Sid":"A1","Effect":"Allow","Principal":{"AWS":["u1"]},"Action":["s3:Get*"],"Resource":"arn:aws:s3:::b/*","Condition":{"IpAddressIfExists":{"aws:SourceIp":["10.0.0.0/8"]},"ForAnyValue:StringLike":{"s3:prefix":"a/${aws:username}/*"}}}]}"#;
    let pieces = ["{", "}", "[", "]", "\"", ":", ",", "*", "${", "Deny", "null", "1e999", "\u{0}", "é"];
    for _ in 0..5_000 {
        let mut doc: Vec<char> = base.chars().collect();
        for _ in 0..1 + r.below(4) {
            let at = r.below(doc.len() + 1);
            match r.below(3) {
                0 if at < doc.len() => {
                    doc.remove(at);
                }
                1 => doc.splice(at..at, r.pick(&pieces).chars()).for_each(drop),
                _ if at < doc.len() => doc.truncate(at),
                _ => {}
            }
        }
        let doc: String = doc.into_iter().collect();
        for kind in [Kind::Bucket, Kind::Identity] {
            // Any answer is fine; a panic is not.
            let _ = Policy::parse(&doc, kind, Some("b"));
        }
    }
}
