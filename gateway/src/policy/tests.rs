//! Table tests: documents refused as AWS refuses them, and AWS's documented
//! example policies decided as AWS decides them.

use std::collections::HashMap;

use super::*;

const BUCKET: &str = "media";

fn bucket_policy(doc: &str) -> Policy {
    Policy::parse(doc, Kind::Bucket, Some(BUCKET)).unwrap_or_else(|e| panic!("{e}: {doc}"))
}

fn identity_policy(doc: &str) -> Policy {
    Policy::parse(doc, Kind::Identity, None).unwrap_or_else(|e| panic!("{e}: {doc}"))
}

/// A request context from `key=value` pairs (keys lower-cased).
fn ctx(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        m.entry(k.to_ascii_lowercase()).or_default().push((*v).to_owned());
    }
    m
}

fn user(name: &str) -> Principal<'_> {
    Principal::User { name, root: false }
}

fn decide(policies: &[&Policy], who: Principal<'_>, action: &str, resource: &str, c: &[(&str, &str)]) -> Decision {
    let mut context = ctx(c);
    if let Principal::User { name, .. } = who {
        context.entry("aws:username".into()).or_insert_with(|| vec![name.to_owned()]);
    }
    evaluate(policies, &Request { principal: who, action, resource, context: &context })
}

#[test]
fn malformed_documents_are_refused() {
    let cases: &[(&str, Kind, &str)] = &[
        ("not json", Kind::Bucket, "invalid Json"),
        (r#"{"Version":"2012-10-17"}"#, Kind::Bucket, "Statement"),
        (r#"{"Version":"2012-10-17","Statement":[]}"#, Kind::Bucket, "Statement"),
        (r#"{"Version":"2019-01-01","Statement":[]}"#, Kind::Bucket, "version"),
        (
            r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::media/*"}]}"#,
            Kind::Bucket,
            "effect",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:Fly","Resource":"arn:aws:s3:::media/*"}]}"#,
            Kind::Bucket,
            "invalid action",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ec2:RunInstances","Resource":"*"}]}"#,
            Kind::Bucket,
            "invalid action",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#,
            Kind::Bucket,
            "invalid resource",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"media/*"}]}"#,
            Kind::Bucket,
            "invalid resource",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::media/*"}]}"#,
            Kind::Bucket,
            "Principal",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#,
            Kind::Identity,
            "principal",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","NotAction":"s3:PutObject","Resource":"arn:aws:s3:::media/*"}]}"#,
            Kind::Bucket,
            "not both",
        ),
        (r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}]}"#, Kind::Bucket, "Resource"),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::media/*","Condition":{"StringSorta":{"s3:prefix":"a"}}}]}"#,
            Kind::Bucket,
            "Condition type",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::media/*","Condition":{"IpAddress":{"aws:SourceIp":"300.1.2.3/8"}}}]}"#,
            Kind::Bucket,
            "not a valid value",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::media/*"}]}"#,
            Kind::Bucket,
            "principal",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::media/*","Extra":1}]}"#,
            Kind::Bucket,
            "Unknown field",
        ),
        (
            r#"{"Statement":[{"Sid":"no/slashes","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::media/*"}]}"#,
            Kind::Bucket,
            "SID",
        ),
    ];
    for (doc, kind, says) in cases {
        let e = Policy::parse(doc, *kind, Some(BUCKET)).expect_err(doc);
        assert!(e.0.to_ascii_lowercase().contains(&says.to_ascii_lowercase()), "{doc}: {e}");
    }
    let huge = format!(r#"{{"Statement":[{}]}}"#, "x".repeat(MAX_POLICY_BYTES));
    assert!(Policy::parse(&huge, Kind::Bucket, Some(BUCKET)).is_err());
}

/// AWS's "Granting read-only permission to a public anonymous user" example.
#[test]
fn a_public_read_bucket() {
    let p = bucket_policy(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow","Principal":"*",
            "Action":["s3:GetObject","s3:GetObjectVersion"],"Resource":["arn:aws:s3:::media/*"]}]}"#,
    );
    let anon = Principal::Anonymous;
    assert_eq!(decide(&[&p], anon, "s3:GetObject", "arn:aws:s3:::media/live/seg1.ts", &[]), Decision::Allow);
    assert_eq!(decide(&[&p], anon, "s3:PutObject", "arn:aws:s3:::media/live/seg1.ts", &[]), Decision::Default);
    assert_eq!(decide(&[&p], anon, "s3:ListBucket", "arn:aws:s3:::media", &[]), Decision::Default);
    assert_eq!(decide(&[&p], anon, "s3:DeleteObject", "arn:aws:s3:::media/a", &[]), Decision::Default);
    assert_eq!(decide(&[&p], user("bob"), "s3:GetObject", "arn:aws:s3:::media/a", &[]), Decision::Allow);
}

/// AWS's per-user home folder example, with `${aws:username}`.
#[test]
fn home_folders_with_policy_variables() {
    let p = identity_policy(
        r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"ListOwnFolder","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::media",
             "Condition":{"StringLike":{"s3:prefix":["","home/","home/${aws:username}/*"]}}},
            {"Sid":"OwnObjects","Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],
             "Resource":"arn:aws:s3:::media/home/${aws:username}/*"}]}"#,
    );
    let alice = user("alice");
    let list = |prefix: &str| decide(&[&p], alice, "s3:ListBucket", "arn:aws:s3:::media", &[("s3:prefix", prefix)]);
    assert_eq!(list("home/alice/2026/"), Decision::Allow);
    assert_eq!(list("home/"), Decision::Allow);
    assert_eq!(list("home/bob/"), Decision::Default);
    // s3:prefix absent: StringLike does not hold.
    assert_eq!(decide(&[&p], alice, "s3:ListBucket", "arn:aws:s3:::media", &[]), Decision::Default);
    assert_eq!(decide(&[&p], alice, "s3:PutObject", "arn:aws:s3:::media/home/alice/x", &[]), Decision::Allow);
    assert_eq!(decide(&[&p], alice, "s3:PutObject", "arn:aws:s3:::media/home/bob/x", &[]), Decision::Default);
    // Version 2008-10-17: no variables, the text is literal.
    let old = identity_policy(
        r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::media/${aws:username}/*"}]}"#,
    );
    assert_eq!(decide(&[&old], alice, "s3:GetObject", "arn:aws:s3:::media/alice/x", &[]), Decision::Default);
    assert_eq!(decide(&[&old], alice, "s3:GetObject", "arn:aws:s3:::media/${aws:username}/x", &[]), Decision::Allow);
}

/// "Deny requests that do not use HTTPS" and "restrict by IP address".
#[test]
fn deny_without_tls_or_from_outside_a_network() {
    let p = bucket_policy(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::123456789012:user/alice"]},"Action":"s3:*","Resource":["arn:aws:s3:::media","arn:aws:s3:::media/*"]},
            {"Sid":"TLSOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::media","arn:aws:s3:::media/*"],
             "Condition":{"Bool":{"aws:SecureTransport":"false"}}},
            {"Sid":"OfficeOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::media/*",
             "Condition":{"NotIpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:db8::/32"]}}}]}"#,
    );
    let alice = user("alice");
    let get = |c: &[(&str, &str)]| decide(&[&p], alice, "s3:GetObject", "arn:aws:s3:::media/a", c);
    assert_eq!(get(&[("aws:SecureTransport", "true"), ("aws:SourceIp", "192.0.2.10")]), Decision::Allow);
    assert_eq!(get(&[("aws:SecureTransport", "false"), ("aws:SourceIp", "192.0.2.10")]), Decision::Deny);
    assert_eq!(get(&[("aws:SecureTransport", "true"), ("aws:SourceIp", "198.51.100.7")]), Decision::Deny);
    assert_eq!(get(&[("aws:SecureTransport", "true"), ("aws:SourceIp", "2001:db8::5")]), Decision::Allow);
    assert_eq!(get(&[("aws:SecureTransport", "true"), ("aws:SourceIp", "::ffff:192.0.2.9")]), Decision::Allow);
    // NotIpAddress with the key absent holds (a negated operator): denied.
    assert_eq!(get(&[("aws:SecureTransport", "true")]), Decision::Deny);
    // Another user: no Allow names them.
    assert_eq!(
        decide(
            &[&p],
            user("bob"),
            "s3:GetObject",
            "arn:aws:s3:::media/a",
            &[("aws:SecureTransport", "true"), ("aws:SourceIp", "192.0.2.1")]
        ),
        Decision::Default
    );
}

/// An explicit Deny in one policy beats an Allow in another (identity and
/// bucket policies together); NotPrincipal and NotAction.
#[test]
fn explicit_deny_wins_across_policies() {
    let identity =
        identity_policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#);
    let bucket = bucket_policy(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/admin"},"Action":"s3:DeleteObject","Resource":"arn:aws:s3:::media/*"}]}"#,
    );
    let (alice, admin) = (user("alice"), user("admin"));
    assert_eq!(decide(&[&identity, &bucket], alice, "s3:GetObject", "arn:aws:s3:::media/a", &[]), Decision::Allow);
    assert_eq!(decide(&[&identity, &bucket], alice, "s3:DeleteObject", "arn:aws:s3:::media/a", &[]), Decision::Deny);
    assert_eq!(decide(&[&identity, &bucket], admin, "s3:DeleteObject", "arn:aws:s3:::media/a", &[]), Decision::Allow);
    let no_delete = identity_policy(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":["s3:DeleteObject","s3:DeleteBucket"],"Resource":"*"}]}"#,
    );
    assert_eq!(decide(&[&no_delete], alice, "s3:PutObject", "arn:aws:s3:::x/y", &[]), Decision::Allow);
    assert_eq!(decide(&[&no_delete], alice, "s3:DeleteObject", "arn:aws:s3:::x/y", &[]), Decision::Default);
    // NotResource: everything but one bucket.
    let not_there = identity_policy(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","NotResource":"arn:aws:s3:::secret/*"}]}"#,
    );
    assert_eq!(decide(&[&not_there], alice, "s3:GetObject", "arn:aws:s3:::media/a", &[]), Decision::Allow);
    assert_eq!(decide(&[&not_there], alice, "s3:GetObject", "arn:aws:s3:::secret/a", &[]), Decision::Default);
    // The root user is named by `…:root`; anonymous by "*" only.
    let root_only = bucket_policy(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::media/*"}]}"#,
    );
    let root = Principal::User { name: "ops", root: true };
    assert_eq!(decide(&[&root_only], root, "s3:GetObject", "arn:aws:s3:::media/a", &[]), Decision::Allow);
    assert_eq!(
        decide(&[&root_only], Principal::Anonymous, "s3:GetObject", "arn:aws:s3:::media/a", &[]),
        Decision::Default
    );
}

#[test]
fn condition_operators() {
    let with = |op: &str, key: &str, values: &str| {
        identity_policy(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*","Condition":{{"{op}":{{"{key}":{values}}}}}}}]}}"#
        ))
    };
    let a = user("alice");
    let check =
        |p: &Policy, c: &[(&str, &str)]| decide(&[p], a, "s3:ListBucket", "arn:aws:s3:::media", c) == Decision::Allow;

    let p = with("NumericLessThanEquals", "s3:max-keys", r#""100""#);
    assert!(check(&p, &[("s3:max-keys", "100")]) && !check(&p, &[("s3:max-keys", "101")]) && !check(&p, &[]));
    let p = with("NumericLessThanEqualsIfExists", "s3:max-keys", "100");
    assert!(check(&p, &[]) && !check(&p, &[("s3:max-keys", "1000")]));
    let p = with("StringEquals", "s3:delimiter", r#"["/","|"]"#);
    assert!(check(&p, &[("s3:delimiter", "|")]) && !check(&p, &[("s3:delimiter", "-")]));
    let p = with("StringNotEquals", "s3:delimiter", r#""/""#);
    assert!(check(&p, &[("s3:delimiter", "-")]) && !check(&p, &[("s3:delimiter", "/")]) && check(&p, &[]));
    let p = with("StringEqualsIgnoreCase", "aws:username", r#""ALICE""#);
    assert!(check(&p, &[]));
    let p = with("StringNotLike", "s3:prefix", r#""private/*""#);
    assert!(check(&p, &[("s3:prefix", "public/x")]) && !check(&p, &[("s3:prefix", "private/x")]));
    let p = with("DateLessThan", "aws:CurrentTime", r#""2030-01-01T00:00:00Z""#);
    assert!(check(&p, &[("aws:CurrentTime", "2026-12-06T10:00:00Z")]));
    assert!(!check(&p, &[("aws:CurrentTime", "2031-01-01T00:00:00Z")]));
    let p = with("DateGreaterThanEquals", "aws:CurrentTime", r#""1798761600""#); // 2027-01-01
    assert!(!check(&p, &[("aws:CurrentTime", "2026-12-06T10:00:00Z")]));
    let p = with("Null", "s3:x-amz-acl", r#""true""#);
    assert!(check(&p, &[]) && !check(&p, &[("s3:x-amz-acl", "private")]));
    let p = with("Bool", "aws:SecureTransport", "true");
    assert!(check(&p, &[("aws:SecureTransport", "true")]) && !check(&p, &[("aws:SecureTransport", "false")]));
    let p = with("IpAddress", "aws:SourceIp", r#""10.1.0.0/16""#);
    assert!(check(&p, &[("aws:SourceIp", "10.1.200.3")]) && !check(&p, &[("aws:SourceIp", "10.2.0.1")]));
    let p = with("ForAllValues:StringLike", "s3:ExistingObjectTag/team", r#"["video*","audio"]"#);
    assert!(check(&p, &[("s3:ExistingObjectTag/team", "video-eu"), ("s3:ExistingObjectTag/team", "audio")]));
    assert!(!check(&p, &[("s3:ExistingObjectTag/team", "video-eu"), ("s3:ExistingObjectTag/team", "ads")]));
    assert!(check(&p, &[]), "ForAllValues holds over no values");
    let p = with("ForAnyValue:StringEquals", "s3:ExistingObjectTag/team", r#""ads""#);
    assert!(check(&p, &[("s3:ExistingObjectTag/team", "video"), ("s3:ExistingObjectTag/team", "ads")]));
    assert!(!check(&p, &[]));
    // Condition keys are case-insensitive.
    let p = with("StringEquals", "S3:Prefix", r#""a/""#);
    assert!(check(&p, &[("s3:prefix", "a/")]));
}

#[test]
fn wildcards() {
    use super::eval::wildcard;
    for (p, t, fold, want) in [
        ("*", "", false, true),
        ("a*c", "abbbc", false, true),
        ("a*c", "abbbd", false, false),
        ("a?c", "abc", false, true),
        ("a?c", "ac", false, false),
        ("*.ts", "live/seg 1.ts", false, true),
        ("s3:get*", "s3:getobject", true, true),
        ("s3:Get*", "s3:getobject", false, false),
        ("arn:aws:s3:::media/*/x", "arn:aws:s3:::media/a/b/x", false, true),
        ("**a", "bba", false, true),
        ("é*", "éclair", false, true),
    ] {
        assert_eq!(wildcard(p, t, fold), want, "{p} ~ {t}");
    }
}

#[test]
fn admin_actions_live_in_identity_policies_only() {
    let p = identity_policy(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["admin:ListKeys","admin:*Policy*"],"Resource":"*"}]}"#,
    );
    let any = "arn:aws:s3:::*";
    assert_eq!(decide(&[&p], user("ops"), "admin:ListKeys", any, &[]), Decision::Allow);
    assert_eq!(decide(&[&p], user("ops"), "admin:PutPolicy", any, &[]), Decision::Allow);
    assert_eq!(decide(&[&p], user("ops"), "admin:DeleteKey", any, &[]), Decision::Default);
    assert_eq!(decide(&[&p], user("ops"), "s3:ListBucket", "arn:aws:s3:::media", &[]), Decision::Default);
    let s3_all =
        identity_policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#);
    assert_eq!(decide(&[&s3_all], user("ops"), "admin:CreateKey", any, &[]), Decision::Default, "s3:* is not admin");
    for bad_doc in [
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"admin:Reboot","Resource":"*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"admin:ListKeys","Resource":"arn:aws:s3:::media"}]}"#,
    ] {
        let kind = if bad_doc.contains("Principal") { Kind::Bucket } else { Kind::Identity };
        assert!(Policy::parse(bad_doc, kind, Some(BUCKET)).is_err(), "{bad_doc}");
    }
}
