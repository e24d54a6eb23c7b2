//! Access policies in AWS's JSON language, and their evaluation: pure code
//! (no I/O), so every rule is covered by table tests.
//!
//! ```text
//!  document (JSON) ──parse──► Policy { statements }     MalformedPolicy on anything AWS refuses
//!  request ──► Request { principal, action, resource, context keys }
//!  evaluate(identity policies, bucket policy, request):
//!     an explicit Deny in any statement that matches  ─► Deny
//!     else an Allow that matches                      ─► Allow
//!     else                                            ─► implicit deny
//! ```
//!
//! A statement matches when its principal (bucket policies), action,
//! resource and every condition match. Supported: `Version` 2012-10-17 (and
//! 2008-10-17, without policy variables), `Id`, `Statement` (one or a
//! list), `Sid`, `Effect`, `Principal`/`NotPrincipal` (`*`, `{"AWS": …}`
//! with user names, `arn:aws:iam::<account>:user/<name>` or
//! `arn:aws:iam::<account>:root`), `Action`/`NotAction` and
//! `Resource`/`NotResource` with `*` and `?` wildcards, policy variables
//! `${aws:username}`, `${aws:userid}`, `${*}`, `${?}`, `${$}`, and
//! `Condition` with the operators in [`eval`] (`…IfExists`,
//! `ForAllValues:`/`ForAnyValue:`).

pub mod eval;
#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

use serde_json::Value;

pub use eval::{Decision, Principal, Request, evaluate};

/// A parsed policy document.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// `2012-10-17` enables policy variables; `2008-10-17` does not.
    pub variables: bool,
    /// The statements, in document order.
    pub statements: Vec<Statement>,
}

/// Allow or Deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Grants what the statement matches.
    Allow,
    /// Refuses it, whatever else allows it.
    Deny,
}

/// A list of patterns, or everything but them (`NotAction`, `NotResource`).
#[derive(Clone, Debug, PartialEq)]
pub struct Patterns {
    /// `Not…`: matches what none of the patterns match.
    pub negated: bool,
    /// The patterns, with `*` and `?` wildcards.
    pub patterns: Vec<String>,
}

/// Who a bucket policy statement is about.
#[derive(Clone, Debug, PartialEq)]
pub struct Principals {
    /// `NotPrincipal`.
    pub negated: bool,
    /// `*` (everyone, anonymous included) or the named users.
    pub any: bool,
    /// User names (from `arn:aws:iam::<account>:user/<name>` or bare), and
    /// `root` for the account's root.
    pub users: Vec<String>,
}

/// One condition: `operator: { key: [values] }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// The operator without its qualifiers.
    pub op: eval::Op,
    /// `…IfExists`: true when the key is absent.
    pub if_exists: bool,
    /// `ForAllValues:` / `ForAnyValue:` / neither.
    pub set: eval::SetQualifier,
    /// The condition key, lower-cased (keys are case-insensitive).
    pub key: String,
    /// The values (any matches).
    pub values: Vec<String>,
}

impl Condition {
    /// Whether the operator is a negated one (holds when values differ).
    fn op_negated(&self) -> bool {
        matches!(
            self.op,
            eval::Op::StringNotEquals
                | eval::Op::StringNotEqualsIgnoreCase
                | eval::Op::StringNotLike
                | eval::Op::NumericNotEquals
                | eval::Op::DateNotEquals
                | eval::Op::NotIpAddress
        )
    }
}

/// One statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// `Sid`, if any.
    pub sid: Option<String>,
    /// Allow or Deny.
    pub effect: Effect,
    /// Bucket policies: who; identity policies: none.
    pub principal: Option<Principals>,
    /// `Action` / `NotAction`, lower-cased.
    pub action: Patterns,
    /// `Resource` / `NotResource`.
    pub resource: Patterns,
    /// All must hold.
    pub conditions: Vec<Condition>,
}

/// What kind of policy a document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Attached to a user: no `Principal`.
    Identity,
    /// Attached to a bucket: `Principal` required; resources in the bucket.
    Bucket,
}

/// Why a document is refused (`MalformedPolicy`, with AWS's wording where
/// it has one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn bad<T>(m: impl Into<String>) -> Result<T, Malformed> {
    Err(Malformed(m.into()))
}

/// At most this many bytes of policy document (AWS: 20 KB for a bucket).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// A string or a list of strings, as the language allows in most places.
fn strings(v: &Value, what: &str) -> Result<Vec<String>, Malformed> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                _ => bad(format!("{what} must be a string or a list of strings")),
            })
            .collect(),
        _ => bad(format!("{what} must be a string or a non-empty list of strings")),
    }
}

/// The S3 actions (lower-cased, without `s3:`), those Tessera serves and
/// those it does not serve yet (a policy copied from AWS names them); an
/// action pattern must match at least one, as AWS checks.
pub const ACTIONS: &[&str] = &[
    "bypassgovernanceretention",
    "deletebucketownershipcontrols",
    "deletebucketwebsite",
    "deleteobjecttagging",
    "deleteobjectversion",
    "deleteobjectversiontagging",
    "getaccelerateconfiguration",
    "getbucketlogging",
    "getbucketnotification",
    "getbucketobjectlockconfiguration",
    "getbucketownershipcontrols",
    "getbucketrequestpayment",
    "getbucketwebsite",
    "getencryptionconfiguration",
    "getlifecycleconfiguration",
    "getobjectlegalhold",
    "getobjectretention",
    "getobjectversion",
    "getobjectversionacl",
    "getobjectversionattributes",
    "getobjectversiontagging",
    "getreplicationconfiguration",
    "listbucketversions",
    "putaccelerateconfiguration",
    "putbucketlogging",
    "putbucketnotification",
    "putbucketobjectlockconfiguration",
    "putbucketownershipcontrols",
    "putbucketrequestpayment",
    "putbucketwebsite",
    "putencryptionconfiguration",
    "putlifecycleconfiguration",
    "putobjectlegalhold",
    "putobjectretention",
    "putobjectversionacl",
    "putobjectversiontagging",
    "putreplicationconfiguration",
    "replicateobject",
    "restoreobject",
    "abortmultipartupload",
    "createbucket",
    "deletebucket",
    "deletebucketpolicy",
    "deleteobject",
    "getbucketacl",
    "getbucketcors",
    "getbucketlocation",
    "getbucketpolicy",
    "getbucketpolicystatus",
    "getbucketpublicaccessblock",
    "getbuckettagging",
    "getbucketversioning",
    "getobject",
    "getobjectacl",
    "getobjectattributes",
    "getobjecttagging",
    "listallmybuckets",
    "listbucket",
    "listbucketmultipartuploads",
    "listmultipartuploadparts",
    "putbucketacl",
    "putbucketcors",
    "putbucketpolicy",
    "putbucketpublicaccessblock",
    "putbuckettagging",
    "putbucketversioning",
    "putobject",
    "putobjectacl",
    "putobjecttagging",
];

/// Tessera's administration actions (lower-cased, without `admin:`), the
/// admin API's (admin.rs); identity policies only, with Resource `*` or
/// `arn:aws:s3:::*`.
pub const ADMIN_ACTIONS: &[&str] =
    &["createkey", "listkeys", "updatekey", "deletekey", "putpolicy", "listpolicies", "deletepolicy"];

fn check_action(p: &str, kind: Kind) -> Result<String, Malformed> {
    let lower = p.to_ascii_lowercase();
    if lower == "*" {
        return Ok(lower);
    }
    let known = match (lower.strip_prefix("s3:"), lower.strip_prefix("admin:")) {
        (Some(rest), _) => ACTIONS.iter().any(|a| eval::wildcard(rest, a, true)),
        (_, Some(rest)) => kind == Kind::Identity && ADMIN_ACTIONS.iter().any(|a| eval::wildcard(rest, a, true)),
        _ => false,
    };
    if !known {
        return bad(format!("Policy has invalid action: {p}"));
    }
    Ok(lower)
}

fn check_resource(r: &str, kind: Kind, bucket: Option<&str>) -> Result<String, Malformed> {
    if r == "*" {
        return Ok(r.to_owned());
    }
    let Some(rest) = r.strip_prefix("arn:aws:s3:::") else {
        return bad(format!("Policy has invalid resource: {r}"));
    };
    if kind == Kind::Bucket
        && let Some(b) = bucket
    {
        // A bucket policy speaks of its own bucket only.
        let named = rest.split('/').next().unwrap_or("");
        if !eval::wildcard(named, b, false) {
            return bad("Policy has invalid resource");
        }
    }
    Ok(r.to_owned())
}

fn principals(v: &Value, negated: bool) -> Result<Principals, Malformed> {
    let mut p = Principals { negated, any: false, users: Vec::new() };
    let list = match v {
        Value::String(s) if s == "*" => {
            p.any = true;
            return Ok(p);
        }
        Value::Object(m) => {
            let mut out = Vec::new();
            for (k, v) in m {
                if k != "AWS" {
                    return bad(format!("Invalid principal in policy: unsupported principal type {k}"));
                }
                out.extend(strings(v, "Principal AWS")?);
            }
            out
        }
        _ => return bad("Invalid principal in policy"),
    };
    for s in list {
        if s == "*" {
            p.any = true;
        } else if let Some(rest) = s.strip_prefix("arn:aws:iam::") {
            match rest.split_once(':') {
                Some((_, "root")) => p.users.push("root".into()),
                Some((_, u)) if u.starts_with("user/") && u.len() > 5 => p.users.push(u[5..].to_owned()),
                _ => return bad(format!("Invalid principal in policy: {s}")),
            }
        } else if !s.is_empty() && !s.contains([':', '/', '*']) {
            p.users.push(s);
        } else {
            return bad(format!("Invalid principal in policy: {s}"));
        }
    }
    Ok(p)
}

fn conditions(v: &Value) -> Result<Vec<Condition>, Malformed> {
    let Value::Object(ops) = v else { return bad("Condition must be an object") };
    let mut out = Vec::new();
    for (name, body) in ops {
        let (set, rest) = if let Some(r) = name.strip_prefix("ForAllValues:") {
            (eval::SetQualifier::ForAll, r)
        } else if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (eval::SetQualifier::ForAny, r)
        } else {
            (eval::SetQualifier::Single, name.as_str())
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (rest, false),
        };
        let Some(op) = eval::Op::from_name(base) else {
            return bad(format!("Invalid Condition type : {name}"));
        };
        let Value::Object(keys) = body else { return bad(format!("Condition {name} must map keys to values")) };
        for (key, vals) in keys {
            let values = match vals {
                Value::Bool(b) => vec![b.to_string()],
                Value::Number(n) => vec![n.to_string()],
                Value::Array(a) => a
                    .iter()
                    .map(|x| match x {
                        Value::String(s) => Ok(s.clone()),
                        Value::Bool(b) => Ok(b.to_string()),
                        Value::Number(n) => Ok(n.to_string()),
                        _ => bad(format!("Condition {name} {key}: values are strings")),
                    })
                    .collect::<Result<_, _>>()?,
                Value::String(s) => vec![s.clone()],
                _ => return bad(format!("Condition {name} {key}: values are strings")),
            };
            op.validate(&values).map_err(|m| Malformed(format!("Condition {name} {key}: {m}")))?;
            out.push(Condition { op, if_exists, set, key: key.to_ascii_lowercase(), values });
        }
    }
    Ok(out)
}

/// Condition keys whose fixed values make a grant to everyone non-public
/// (AWS's rule for GetBucketPolicyStatus).
const RESTRICTING_KEYS: &[&str] = &[
    "aws:sourceip",
    "aws:sourcearn",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourceaccount",
    "aws:sourceowner",
    "aws:principalaccount",
    "aws:principalorgid",
    "aws:principalarn",
    "aws:username",
    "aws:userid",
];

impl Policy {
    /// Whether the policy grants something to everyone (anonymous
    /// included) without a condition that pins who or where, as AWS
    /// judges `IsPublic`.
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            let everyone = s.principal.as_ref().is_some_and(|p| p.any || p.negated);
            let pinned = s.conditions.iter().any(|c| {
                RESTRICTING_KEYS.contains(&c.key.as_str())
                    && !c.op_negated()
                    && c.values.iter().all(|v| !v.contains(['*', '?']) && v != "0.0.0.0/0" && v != "::/0")
            });
            s.effect == Effect::Allow && everyone && !pinned
        })
    }

    /// Parses and checks `doc` as a policy of `kind` (for a bucket policy,
    /// `bucket` is the bucket it is attached to).
    pub fn parse(doc: &str, kind: Kind, bucket: Option<&str>) -> Result<Policy, Malformed> {
        if doc.len() > MAX_POLICY_BYTES {
            return bad(format!("Policies must be at most {MAX_POLICY_BYTES} bytes"));
        }
        let v: Value =
            serde_json::from_str(doc).map_err(|e| Malformed(format!("This policy contains invalid Json: {e}")))?;
        let Value::Object(top) = v else { return bad("This policy contains invalid Json") };
        let mut variables = false;
        let mut statements = None;
        for (k, v) in &top {
            match (k.as_str(), v) {
                ("Version", Value::String(s)) if s == "2012-10-17" => variables = true,
                ("Version", Value::String(s)) if s == "2008-10-17" => variables = false,
                ("Version", _) => return bad("The policy must contain a valid version string"),
                ("Id", Value::String(_)) => {}
                ("Statement", Value::Array(a)) => statements = Some(a.clone()),
                ("Statement", o @ Value::Object(_)) => statements = Some(vec![o.clone()]),
                (k, _) => return bad(format!("Unknown field {k}")),
            }
        }
        let Some(list) = statements.filter(|s| !s.is_empty()) else {
            return bad("Missing required field Statement");
        };
        let statements = list.iter().map(|s| statement(s, kind, bucket)).collect::<Result<_, _>>()?;
        Ok(Policy { variables, statements })
    }
}

fn statement(v: &Value, kind: Kind, bucket: Option<&str>) -> Result<Statement, Malformed> {
    let Value::Object(m) = v else { return bad("A statement must be an object") };
    let mut sid = None;
    let mut effect = None;
    let mut principal = None;
    let mut action = None;
    let mut resource = None;
    let mut conds = Vec::new();
    for (k, v) in m {
        match k.as_str() {
            "Sid" => match v {
                Value::String(s)
                    if s.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-' || c == '_') =>
                {
                    sid = Some(s.clone())
                }
                _ => return bad("Statement IDs (SID) must be alpha-numeric"),
            },
            "Effect" => {
                effect = Some(match v.as_str() {
                    Some("Allow") => Effect::Allow,
                    Some("Deny") => Effect::Deny,
                    _ => return bad("Invalid effect"),
                })
            }
            "Principal" | "NotPrincipal" => {
                if principal.is_some() {
                    return bad("A statement has Principal or NotPrincipal, not both");
                }
                principal = Some(principals(v, k == "NotPrincipal")?);
            }
            "Action" | "NotAction" => {
                if action.is_some() {
                    return bad("A statement has Action or NotAction, not both");
                }
                let patterns = strings(v, k)?.iter().map(|p| check_action(p, kind)).collect::<Result<_, _>>()?;
                action = Some(Patterns { negated: k == "NotAction", patterns });
            }
            "Resource" | "NotResource" => {
                if resource.is_some() {
                    return bad("A statement has Resource or NotResource, not both");
                }
                let patterns =
                    strings(v, k)?.iter().map(|r| check_resource(r, kind, bucket)).collect::<Result<_, _>>()?;
                resource = Some(Patterns { negated: k == "NotResource", patterns });
            }
            "Condition" => conds = conditions(v)?,
            other => return bad(format!("Unknown field {other}")),
        }
    }
    let Some(effect) = effect else { return bad("Missing required field Effect") };
    let Some(action) = action else { return bad("Missing required field Action") };
    let resource = match (resource, kind) {
        (Some(r), _) => r,
        (None, _) => return bad("Missing required field Resource"),
    };
    match (kind, &principal) {
        (Kind::Bucket, None) => return bad("Missing required field Principal"),
        (Kind::Identity, Some(_)) => return bad("Policy document should not specify a principal"),
        _ => {}
    }
    Ok(Statement { sid, effect, principal, action, resource, conditions: conds })
}
