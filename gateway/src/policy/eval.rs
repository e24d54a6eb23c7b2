//! Evaluation: wildcards, policy variables, condition operators, and the
//! decision over every applicable policy.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{Condition, Effect, Patterns, Policy, Statement};

/// Who is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal<'a> {
    /// No signature.
    Anonymous,
    /// A user (named by its user name); `root` for the account's root.
    User {
        /// The user name.
        name: &'a str,
        /// The root user.
        root: bool,
    },
}

/// One request as the evaluator sees it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// Who.
    pub principal: Principal<'a>,
    /// `s3:GetObject`, … (any case).
    pub action: &'a str,
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key` (`*` for
    /// ListAllMyBuckets).
    pub resource: &'a str,
    /// Condition keys, lower-cased (`aws:sourceip`, `s3:prefix`, …), with
    /// their values.
    pub context: &'a HashMap<String, Vec<String>>,
}

/// The outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A matching Allow and no matching Deny.
    Allow,
    /// A matching Deny: refused whatever else allows it.
    Deny,
    /// Nothing matched: refused unless something outside policies allows
    /// it (an ACL, ownership).
    Default,
}

/// Decides `req` over `policies` (identity policies of the user and the
/// bucket's policy together): an explicit Deny wins, then an Allow, else
/// the default deny.
pub fn evaluate(policies: &[&Policy], req: &Request<'_>) -> Decision {
    let mut allowed = false;
    for p in policies {
        for s in &p.statements {
            if statement_matches(p, s, req) {
                match s.effect {
                    Effect::Deny => return Decision::Deny,
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if allowed { Decision::Allow } else { Decision::Default }
}

fn statement_matches(p: &Policy, s: &Statement, req: &Request<'_>) -> bool {
    if let Some(who) = &s.principal {
        let named = match req.principal {
            Principal::Anonymous => who.any,
            Principal::User { name, root } => who.any || who.users.iter().any(|u| u == name || (root && u == "root")),
        };
        if named == who.negated {
            return false;
        }
    }
    let action = req.action.to_ascii_lowercase();
    if !patterns_match(&s.action, |pat| wildcard(pat, &action, true)) {
        return false;
    }
    let resource_ok = patterns_match(&s.resource, |pat| match substitute(pat, p.variables, req) {
        Some(pat) => wildcard(&pat, req.resource, false),
        None => false,
    });
    resource_ok && s.conditions.iter().all(|c| condition_holds(c, p.variables, req))
}

fn patterns_match(p: &Patterns, one: impl Fn(&str) -> bool) -> bool {
    p.patterns.iter().any(|x| one(x)) != p.negated
}

/// `*` and `?` wildcards over `text` (ASCII case folded when `fold`).
pub fn wildcard(pattern: &str, text: &str, fold: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| if fold { a.eq_ignore_ascii_case(&b) } else { a == b };
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && eq(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Replaces policy variables (`${aws:username}`, …) in `s`; `None` when a
/// variable has no value for this request (the element does not match).
fn substitute(s: &str, variables: bool, req: &Request<'_>) -> Option<String> {
    if !variables || !s.contains("${") {
        return Some(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find('}')?;
        let name = after[..end].to_ascii_lowercase();
        match name.as_str() {
            "*" => out.push('*'),
            "?" => out.push('?'),
            "$" => out.push('$'),
            key => out.push_str(req.context.get(key).and_then(|v| v.first())?),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Condition operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Exact, case-sensitive.
    StringEquals,
    /// Negated.
    StringNotEquals,
    /// Exact, ignoring case.
    StringEqualsIgnoreCase,
    /// Negated.
    StringNotEqualsIgnoreCase,
    /// With `*` and `?`.
    StringLike,
    /// Negated.
    StringNotLike,
    /// Numbers.
    NumericEquals,
    /// Negated.
    NumericNotEquals,
    /// `<`.
    NumericLessThan,
    /// `<=`.
    NumericLessThanEquals,
    /// `>`.
    NumericGreaterThan,
    /// `>=`.
    NumericGreaterThanEquals,
    /// Dates (RFC 3339 or epoch seconds).
    DateEquals,
    /// Negated.
    DateNotEquals,
    /// Before.
    DateLessThan,
    /// Not after.
    DateLessThanEquals,
    /// After.
    DateGreaterThan,
    /// Not before.
    DateGreaterThanEquals,
    /// `true` / `false`.
    Bool,
    /// In one of the CIDR ranges.
    IpAddress,
    /// In none of them.
    NotIpAddress,
    /// `true`: the key is absent; `false`: present.
    Null,
}

/// `ForAllValues:`, `ForAnyValue:` or neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetQualifier {
    /// No qualifier.
    Single,
    /// Every value of the key must match (true when it has none).
    ForAll,
    /// Some value must match.
    ForAny,
}

const OPS: &[(&str, Op)] = &[
    ("StringEquals", Op::StringEquals),
    ("StringNotEquals", Op::StringNotEquals),
    ("StringEqualsIgnoreCase", Op::StringEqualsIgnoreCase),
    ("StringNotEqualsIgnoreCase", Op::StringNotEqualsIgnoreCase),
    ("StringLike", Op::StringLike),
    ("StringNotLike", Op::StringNotLike),
    ("NumericEquals", Op::NumericEquals),
    ("NumericNotEquals", Op::NumericNotEquals),
    ("NumericLessThan", Op::NumericLessThan),
    ("NumericLessThanEquals", Op::NumericLessThanEquals),
    ("NumericGreaterThan", Op::NumericGreaterThan),
    ("NumericGreaterThanEquals", Op::NumericGreaterThanEquals),
    ("DateEquals", Op::DateEquals),
    ("DateNotEquals", Op::DateNotEquals),
    ("DateLessThan", Op::DateLessThan),
    ("DateLessThanEquals", Op::DateLessThanEquals),
    ("DateGreaterThan", Op::DateGreaterThan),
    ("DateGreaterThanEquals", Op::DateGreaterThanEquals),
    ("Bool", Op::Bool),
    ("IpAddress", Op::IpAddress),
    ("NotIpAddress", Op::NotIpAddress),
    ("Null", Op::Null),
];

impl Op {
    /// The operator named `s` (without qualifiers).
    pub fn from_name(s: &str) -> Option<Op> {
        OPS.iter().find(|(n, _)| *n == s).map(|(_, o)| *o)
    }

    /// Negated operators hold when the key is absent, and when no value matches.
    fn negated(self) -> bool {
        matches!(
            self,
            Op::StringNotEquals
                | Op::StringNotEqualsIgnoreCase
                | Op::StringNotLike
                | Op::NumericNotEquals
                | Op::DateNotEquals
                | Op::NotIpAddress
        )
    }

    /// Checks the policy's values for this operator (MalformedPolicy).
    pub fn validate(self, values: &[String]) -> Result<(), String> {
        for v in values {
            let ok = match self {
                Op::NumericEquals
                | Op::NumericNotEquals
                | Op::NumericLessThan
                | Op::NumericLessThanEquals
                | Op::NumericGreaterThan
                | Op::NumericGreaterThanEquals => v.parse::<f64>().is_ok(),
                Op::DateEquals
                | Op::DateNotEquals
                | Op::DateLessThan
                | Op::DateLessThanEquals
                | Op::DateGreaterThan
                | Op::DateGreaterThanEquals => date(v).is_some() || v.contains("${"),
                Op::Bool | Op::Null => v == "true" || v == "false",
                Op::IpAddress | Op::NotIpAddress => cidr(v).is_some(),
                _ => true,
            };
            if !ok {
                return Err(format!("{v:?} is not a valid value for {self:?}"));
            }
        }
        Ok(())
    }

    /// Whether the request's `value` matches the policy's `want` (the
    /// positive sense: for `StringNotEquals`, whether they are equal).
    fn matches(self, value: &str, want: &str) -> bool {
        match self {
            Op::StringEquals | Op::StringNotEquals => value == want,
            Op::StringEqualsIgnoreCase | Op::StringNotEqualsIgnoreCase => value.eq_ignore_ascii_case(want),
            Op::StringLike | Op::StringNotLike => wildcard(want, value, false),
            Op::NumericEquals | Op::NumericNotEquals => num(value, want, |a, b| a == b),
            Op::NumericLessThan => num(value, want, |a, b| a < b),
            Op::NumericLessThanEquals => num(value, want, |a, b| a <= b),
            Op::NumericGreaterThan => num(value, want, |a, b| a > b),
            Op::NumericGreaterThanEquals => num(value, want, |a, b| a >= b),
            Op::DateEquals | Op::DateNotEquals => dates(value, want, |a, b| a == b),
            Op::DateLessThan => dates(value, want, |a, b| a < b),
            Op::DateLessThanEquals => dates(value, want, |a, b| a <= b),
            Op::DateGreaterThan => dates(value, want, |a, b| a > b),
            Op::DateGreaterThanEquals => dates(value, want, |a, b| a >= b),
            Op::Bool => value.eq_ignore_ascii_case(want),
            Op::IpAddress | Op::NotIpAddress => match (value.parse::<IpAddr>(), cidr(want)) {
                (Ok(ip), Some((net, bits))) => in_cidr(ip, net, bits),
                _ => false,
            },
            Op::Null => false, // decided before values are compared
        }
    }
}

fn num(a: &str, b: &str, f: impl Fn(f64, f64) -> bool) -> bool {
    matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(a), Ok(b)) if f(a, b))
}

/// A date as epoch seconds: RFC 3339, or a plain number of seconds.
fn date(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp())
}

fn dates(a: &str, b: &str, f: impl Fn(i64, i64) -> bool) -> bool {
    matches!((date(a), date(b)), (Some(a), Some(b)) if f(a, b))
}

/// `203.0.113.0/24`, `2001:db8::/32`, or one address.
fn cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = match s.split_once('/') {
        Some((ip, bits)) => (ip.parse::<IpAddr>().ok()?, bits.parse::<u8>().ok()?),
        None => {
            let ip = s.parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        (IpAddr::V6(a), IpAddr::V4(b)) => match a.to_ipv4_mapped() {
            Some(a) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
            None => return false,
        },
        _ => return false,
    };
    if bits == 0 {
        return true;
    }
    let shift = width - u32::from(bits);
    (ip >> shift) == (net >> shift)
}

fn condition_holds(c: &Condition, variables: bool, req: &Request<'_>) -> bool {
    let got = req.context.get(&c.key).filter(|v| !v.is_empty());
    if c.op == Op::Null {
        let absent = got.is_none();
        return c.values.iter().any(|v| (v == "true") == absent);
    }
    let Some(got) = got else {
        return match c.set {
            SetQualifier::ForAll => true,
            SetQualifier::ForAny => false,
            SetQualifier::Single => c.if_exists || c.op.negated(),
        };
    };
    let wants: Vec<String> = c.values.iter().filter_map(|v| substitute(v, variables, req)).collect();
    // The positive sense for one request value: does any policy value match?
    let one = |value: &String| wants.iter().any(|w| c.op.matches(value, w));
    let negated = c.op.negated();
    match c.set {
        SetQualifier::ForAll => got.iter().all(|v| one(v) != negated),
        SetQualifier::ForAny => got.iter().any(|v| one(v) != negated),
        SetQualifier::Single if negated => got.iter().all(|v| !one(v)),
        SetQualifier::Single => got.iter().any(one),
    }
}
