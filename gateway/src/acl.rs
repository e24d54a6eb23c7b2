//! Access control lists on buckets and objects: canned ACLs
//! (`x-amz-acl`), explicit grants (`x-amz-grant-*` headers or an
//! `AccessControlPolicy` body), what each permission lets a grantee do, and
//! the conversion to S3's XML shapes.
//!
//! Tessera's model (see docs/access.md):
//! - a canonical user ID is an access key ID; grantees by e-mail address
//!   are refused (`UnresolvableGrantByEmailAddress`), as AWS does in
//!   regions without them;
//! - objects belong to their bucket's owner (ownership `BucketOwnerPreferred`
//!   semantics), and the owner keeps full control whatever the ACL says;
//! - a bucket whose ownership is `BucketOwnerEnforced` has ACLs disabled:
//!   setting any ACL other than the owner-only ones answers
//!   `AccessControlListNotSupported`, and stored grants grant nothing;
//! - a grant is an Allow on the resource side: an explicit Deny in a bucket
//!   or identity policy still wins.
//!
//! | permission   | on a bucket                                   | on an object       |
//! |--------------|-----------------------------------------------|--------------------|
//! | READ         | list objects, versions and uploads; HEAD      | GET and HEAD       |
//! | WRITE        | put, overwrite and delete any object; multipart | —                |
//! | READ_ACP     | GetBucketAcl                                  | GetObjectAcl       |
//! | WRITE_ACP    | PutBucketAcl                                  | PutObjectAcl       |
//! | FULL_CONTROL | all of the above                              | all of the above   |

use http::HeaderMap;
use s3s::dto::{AccessControlPolicy, Grant, Grantee as DtoGrantee, Owner, Permission, Type};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use tessera_rpc::proto::meta::AclGrant;
use tessera_rpc::proto::meta::acl_grant::Grantee;

/// The group of every requester, anonymous ones included.
pub const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// The group of every request signed by a valid key.
pub const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// An ACL permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    /// READ.
    Read,
    /// WRITE.
    Write,
    /// READ_ACP.
    ReadAcp,
    /// WRITE_ACP.
    WriteAcp,
}

/// Which ACL a permission is looked up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum On {
    /// The bucket's ACL.
    Bucket,
    /// The object's ACL.
    Object,
}

const PERMISSIONS: [&str; 5] = ["READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL"];

fn perm_name(p: Perm) -> &'static str {
    match p {
        Perm::Read => "READ",
        Perm::Write => "WRITE",
        Perm::ReadAcp => "READ_ACP",
        Perm::WriteAcp => "WRITE_ACP",
    }
}

/// The ACL permission that lets a grantee do policy action `action`, and
/// whose ACL holds it; `None` when no ACL grants the action (only the owner
/// and policies can).
pub fn needed(action: &str) -> Option<(Perm, On)> {
    let a = action.strip_prefix("s3:").unwrap_or(action);
    Some(match a {
        "ListBucket" | "ListBucketVersions" | "ListBucketMultipartUploads" => (Perm::Read, On::Bucket),
        "PutObject" | "DeleteObject" | "DeleteObjectVersion" | "AbortMultipartUpload" => (Perm::Write, On::Bucket),
        "GetBucketAcl" => (Perm::ReadAcp, On::Bucket),
        "PutBucketAcl" => (Perm::WriteAcp, On::Bucket),
        // A given version's reads are granted by policies only: an object
        // ACL (the current version's) never opens older versions.
        "GetObject" | "GetObjectAttributes" => (Perm::Read, On::Object),
        "GetObjectAcl" => (Perm::ReadAcp, On::Object),
        "PutObjectAcl" => (Perm::WriteAcp, On::Object),
        _ => return None,
    })
}

/// Does `acl` give `perm` to `caller` (an access key; `None`: anonymous)?
/// With `ignore_public` (IgnorePublicAcls) grants to the two public groups
/// count for nothing.
pub fn grants(acl: &[AclGrant], caller: Option<&str>, perm: Perm, ignore_public: bool) -> bool {
    acl.iter().any(|g| {
        let who = match g.grantee() {
            Grantee::User => caller.is_some_and(|k| k == g.id),
            Grantee::AllUsers => !ignore_public,
            Grantee::AuthenticatedUsers => !ignore_public && caller.is_some(),
        };
        who && (g.permission == "FULL_CONTROL" || g.permission == perm_name(perm))
    })
}

/// Does `acl` give `perm` to the public groups a caller belongs to (all
/// users; authenticated users when `signed`), leaving grants by key aside?
pub fn grants_groups(acl: &[AclGrant], signed: bool, perm: Perm, ignore_public: bool) -> bool {
    let groups: Vec<AclGrant> = acl.iter().filter(|g| g.grantee() != Grantee::User).cloned().collect();
    grants(&groups, signed.then_some(""), perm, ignore_public)
}

/// Does `acl` grant anything to a public group?
pub fn is_public(acl: &[AclGrant]) -> bool {
    acl.iter().any(|g| matches!(g.grantee(), Grantee::AllUsers | Grantee::AuthenticatedUsers))
}

/// Is `acl` the owner-only ACL (what a bucket with ACLs disabled accepts)?
pub fn owner_only(acl: &[AclGrant], owner: &str) -> bool {
    acl.iter().all(|g| g.grantee() == Grantee::User && g.id == owner && g.permission == "FULL_CONTROL")
}

fn grant(grantee: Grantee, id: &str, permission: &str) -> AclGrant {
    AclGrant { grantee: grantee as i32, id: id.to_owned(), permission: permission.to_owned() }
}

/// The grants of canned ACL `name` for a resource owned by `owner`.
pub fn canned(name: &str, owner: &str) -> S3Result<Vec<AclGrant>> {
    let mut acl = vec![grant(Grantee::User, owner, "FULL_CONTROL")];
    match name {
        // Objects belong to the bucket owner: these equal `private`.
        "private" | "bucket-owner-full-control" | "bucket-owner-read" => {}
        "public-read" => acl.push(grant(Grantee::AllUsers, "", "READ")),
        "public-read-write" => {
            acl.push(grant(Grantee::AllUsers, "", "READ"));
            acl.push(grant(Grantee::AllUsers, "", "WRITE"));
        }
        "authenticated-read" => acl.push(grant(Grantee::AuthenticatedUsers, "", "READ")),
        "aws-exec-read" | "log-delivery-write" => {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                format!("the canned ACL {name} grants to AWS services Tessera does not have"),
            ));
        }
        other => return Err(s3_error!(InvalidArgument, "unknown canned ACL {other:?}")),
    }
    Ok(acl)
}

const GRANT_HEADERS: [(&str, &str); 5] = [
    ("x-amz-grant-read", "READ"),
    ("x-amz-grant-write", "WRITE"),
    ("x-amz-grant-read-acp", "READ_ACP"),
    ("x-amz-grant-write-acp", "WRITE_ACP"),
    ("x-amz-grant-full-control", "FULL_CONTROL"),
];

/// The ACL a request's headers set: `x-amz-acl` or the `x-amz-grant-*`
/// headers (not both); `None` when it sets none.
pub fn from_headers(h: &HeaderMap, owner: &str) -> S3Result<Option<Vec<AclGrant>>> {
    let text = |name: &str| h.get(name).map(|v| v.to_str().map(str::trim).unwrap_or("\u{fffd}"));
    let canned_name = text("x-amz-acl");
    let has_grants = GRANT_HEADERS.iter().any(|(n, _)| h.contains_key(*n));
    match (canned_name, has_grants) {
        (Some(_), true) => {
            Err(s3_error!(InvalidRequest, "Specifying both Canned ACLs and Header Grants is not allowed"))
        }
        (Some(name), false) => canned(name, owner).map(Some),
        (None, false) => Ok(None),
        (None, true) => {
            let mut acl = Vec::new();
            for (name, perm) in GRANT_HEADERS {
                for v in h.get_all(name) {
                    let v = v.to_str().map_err(|_| s3_error!(InvalidArgument, "{name} is not text"))?;
                    for g in grantees(v)? {
                        acl.push(grant(g.0, &g.1, perm));
                    }
                }
            }
            Ok(Some(acl))
        }
    }
}

/// The grantees of one `x-amz-grant-*` value: `id="…"`, `uri="…"` or
/// `emailAddress="…"`, comma-separated.
fn grantees(v: &str) -> S3Result<Vec<(Grantee, String)>> {
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (kind, value) =
            item.split_once('=').ok_or_else(|| s3_error!(InvalidArgument, "malformed grantee {item:?}"))?;
        let value = value.trim().trim_matches('"');
        out.push(match kind.trim().to_ascii_lowercase().as_str() {
            "id" => user(value)?,
            "uri" => (group(value)?, String::new()),
            "emailaddress" => return Err(by_email()),
            other => return Err(s3_error!(InvalidArgument, "unknown grantee type {other:?}")),
        });
    }
    Ok(out)
}

fn user(id: &str) -> S3Result<(Grantee, String)> {
    if id.is_empty() {
        return Err(s3_error!(InvalidArgument, "a grantee ID is empty"));
    }
    Ok((Grantee::User, id.to_owned()))
}

fn group(uri: &str) -> S3Result<Grantee> {
    match uri {
        ALL_USERS => Ok(Grantee::AllUsers),
        AUTHENTICATED_USERS => Ok(Grantee::AuthenticatedUsers),
        "http://acs.amazonaws.com/groups/s3/LogDelivery" => Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "the LogDelivery group: Tessera has no server access logging",
        )),
        other => Err(s3_error!(InvalidArgument, "unknown group {other:?}")),
    }
}

fn by_email() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::UnresolvableGrantByEmailAddress,
        "Tessera has no e-mail addresses: grant to the access key ID instead",
    )
}

/// The ACL of an `AccessControlPolicy` body (PutBucketAcl, PutObjectAcl).
/// Its owner, when given, must be the resource's.
pub fn from_policy(p: &AccessControlPolicy, owner: &str) -> S3Result<Vec<AclGrant>> {
    if let Some(id) = p.owner.as_ref().and_then(|o| o.id.as_deref())
        && id != owner
    {
        return Err(s3_error!(AccessDenied, "the ACL's owner is not the resource's owner"));
    }
    let mut acl = Vec::new();
    for g in p.grants.iter().flatten() {
        let perm = g.permission.as_ref().map(Permission::as_str).unwrap_or("");
        if !PERMISSIONS.contains(&perm) {
            return Err(s3_error!(MalformedACLError, "unknown permission {perm:?}"));
        }
        let gr = g.grantee.as_ref().ok_or_else(|| s3_error!(MalformedACLError, "a grant without a grantee"))?;
        let (who, id) = match gr.type_.as_str() {
            Type::CANONICAL_USER => user(gr.id.as_deref().unwrap_or(""))?,
            Type::GROUP => (group(gr.uri.as_deref().unwrap_or(""))?, String::new()),
            Type::AMAZON_CUSTOMER_BY_EMAIL => return Err(by_email()),
            other => return Err(s3_error!(MalformedACLError, "unknown grantee type {other:?}")),
        };
        acl.push(grant(who, &id, perm));
    }
    Ok(acl)
}

/// `acl` in S3's shape; an empty (never set) ACL is the owner's full control.
pub fn to_dto(acl: &[AclGrant], owner: &str) -> (Vec<Grant>, Owner) {
    let fallback = [grant(Grantee::User, owner, "FULL_CONTROL")];
    let acl = if acl.is_empty() { &fallback[..] } else { acl };
    let grants = acl
        .iter()
        .map(|g| {
            let grantee = match g.grantee() {
                Grantee::User => DtoGrantee {
                    display_name: Some(g.id.clone()),
                    email_address: None,
                    id: Some(g.id.clone()),
                    type_: Type::from_static(Type::CANONICAL_USER),
                    uri: None,
                },
                group => DtoGrantee {
                    display_name: None,
                    email_address: None,
                    id: None,
                    type_: Type::from_static(Type::GROUP),
                    uri: Some(if group == Grantee::AllUsers { ALL_USERS } else { AUTHENTICATED_USERS }.to_owned()),
                },
            };
            Grant { grantee: Some(grantee), permission: Some(Permission::from(g.permission.clone())) }
        })
        .collect();
    (grants, Owner { display_name: Some(owner.to_owned()), id: Some(owner.to_owned()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn canned_acls_grant_what_aws_documents() {
        let pr = canned("public-read", "o").unwrap();
        assert!(grants(&pr, None, Perm::Read, false));
        assert!(!grants(&pr, None, Perm::Write, false));
        assert!(!grants(&pr, None, Perm::Read, true), "IgnorePublicAcls");
        assert!(grants(&pr, Some("o"), Perm::WriteAcp, false), "the owner's full control");
        assert!(is_public(&pr));
        let prw = canned("public-read-write", "o").unwrap();
        assert!(grants(&prw, None, Perm::Write, false));
        assert!(!grants(&prw, None, Perm::ReadAcp, false));
        let ar = canned("authenticated-read", "o").unwrap();
        assert!(grants(&ar, Some("k"), Perm::Read, false));
        assert!(!grants(&ar, None, Perm::Read, false));
        assert!(!grants_groups(&pr, true, Perm::Write, false), "the owner's own entry is not a group's");
        assert!(grants_groups(&pr, false, Perm::Read, false));
        assert!(!grants_groups(&pr, false, Perm::Read, true));
        assert!(grants_groups(&canned("authenticated-read", "o").unwrap(), true, Perm::Read, false));
        assert!(!grants_groups(&canned("authenticated-read", "o").unwrap(), false, Perm::Read, false));
        for private in ["private", "bucket-owner-full-control", "bucket-owner-read"] {
            let p = canned(private, "o").unwrap();
            assert!(owner_only(&p, "o") && !is_public(&p));
            assert!(!grants(&p, Some("k"), Perm::Read, false));
        }
        assert_eq!(canned("log-delivery-write", "o").unwrap_err().code(), &S3ErrorCode::NotImplemented);
        assert_eq!(canned("everyone", "o").unwrap_err().code(), &S3ErrorCode::InvalidArgument);
    }

    #[test]
    fn grant_headers_parse() {
        let h = headers(&[
            ("x-amz-grant-read", "id=\"reader\", uri=\"http://acs.amazonaws.com/groups/global/AllUsers\""),
            ("x-amz-grant-write-acp", "id=writer"),
        ]);
        let acl = from_headers(&h, "o").unwrap().unwrap();
        assert_eq!(acl.len(), 3);
        assert!(grants(&acl, Some("reader"), Perm::Read, false));
        assert!(grants(&acl, None, Perm::Read, false));
        assert!(grants(&acl, Some("writer"), Perm::WriteAcp, false));
        assert!(!grants(&acl, Some("writer"), Perm::Write, false));
        let both = headers(&[("x-amz-acl", "private"), ("x-amz-grant-read", "id=x")]);
        assert_eq!(from_headers(&both, "o").unwrap_err().code(), &S3ErrorCode::InvalidRequest);
        let mail = headers(&[("x-amz-grant-read", "emailAddress=\"a@b.c\"")]);
        assert_eq!(from_headers(&mail, "o").unwrap_err().code(), &S3ErrorCode::UnresolvableGrantByEmailAddress);
        let junk = headers(&[("x-amz-grant-read", "reader")]);
        assert_eq!(from_headers(&junk, "o").unwrap_err().code(), &S3ErrorCode::InvalidArgument);
        let group = headers(&[("x-amz-grant-read", "uri=\"http://example.com/group\"")]);
        assert_eq!(from_headers(&group, "o").unwrap_err().code(), &S3ErrorCode::InvalidArgument);
        assert!(from_headers(&HeaderMap::new(), "o").unwrap().is_none());
    }

    #[test]
    fn policy_bodies_round_trip() {
        let acl = canned("public-read-write", "o").unwrap();
        let (g, owner) = to_dto(&acl, "o");
        let body = AccessControlPolicy { grants: Some(g), owner: Some(owner) };
        assert_eq!(from_policy(&body, "o").unwrap(), acl);
        assert_eq!(from_policy(&body, "other").unwrap_err().code(), &S3ErrorCode::AccessDenied);
        let (empty, _) = to_dto(&[], "o");
        assert_eq!(empty.len(), 1, "a never-set ACL shows the owner's full control");
        let bad = AccessControlPolicy {
            grants: Some(vec![Grant { grantee: None, permission: Some(Permission::from_static("READ")) }]),
            owner: None,
        };
        assert_eq!(from_policy(&bad, "o").unwrap_err().code(), &S3ErrorCode::MalformedACLError);
    }

    #[test]
    fn actions_map_to_permissions() {
        assert_eq!(needed("s3:GetObject"), Some((Perm::Read, On::Object)));
        assert_eq!(needed("s3:ListBucket"), Some((Perm::Read, On::Bucket)));
        assert_eq!(needed("s3:PutObject"), Some((Perm::Write, On::Bucket)));
        assert_eq!(needed("s3:PutObjectAcl"), Some((Perm::WriteAcp, On::Object)));
        assert_eq!(needed("s3:PutBucketPolicy"), None);
        assert_eq!(needed("s3:DeleteBucket"), None);
    }
}
