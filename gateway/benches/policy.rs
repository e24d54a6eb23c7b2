//! The cost of one access decision: `policy::evaluate` over a bucket
//! policy of the shape users write (public read, a per-user prefix with a
//! policy variable, a Deny with an IP condition, a ListBucket grant with a
//! prefix condition), for an allowed and a denied request.
//!
//! `cargo bench -p tessera-gateway --bench policy`

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_gateway::policy::{Kind, Policy, Principal, Request, evaluate};

const DOC: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::media/public/*"]},
  {"Sid":"Uploads","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::000000000000:user/encoder1","encoder2"]},
   "Action":["s3:PutObject","s3:AbortMultipartUpload"],"Resource":"arn:aws:s3:::media/uploads/${aws:username}/*"},
  {"Sid":"List","Effect":"Allow","Principal":{"AWS":"encoder1"},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::media",
   "Condition":{"StringLike":{"s3:prefix":["uploads/${aws:username}/*"]}}},
  {"Sid":"Office","Effect":"Deny","Principal":"*","Action":"s3:Delete*","Resource":"arn:aws:s3:::media/*",
   "Condition":{"NotIpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:db8::/32"]}}}]}"#;

fn bench(c: &mut Criterion) {
    let policy = Policy::parse(DOC, Kind::Bucket, Some("media")).expect("the policy parses");
    let mut context: HashMap<String, Vec<String>> = HashMap::new();
    context.insert("aws:sourceip".into(), vec!["198.51.100.7".into()]);
    context.insert("aws:username".into(), vec!["encoder1".into()]);
    context.insert("aws:securetransport".into(), vec!["false".into()]);
    let allowed = Request {
        principal: Principal::User { name: "encoder1", root: false },
        action: "s3:PutObject",
        resource: "arn:aws:s3:::media/uploads/encoder1/2026/12/06/seg-000123.ts",
        context: &context,
    };
    let denied = Request {
        principal: Principal::Anonymous,
        action: "s3:DeleteObject",
        resource: "arn:aws:s3:::media/public/live/seg-000123.ts",
        context: &context,
    };
    c.bench_function("policy evaluate: allowed PutObject", |b| b.iter(|| evaluate(&[&policy], black_box(&allowed))));
    c.bench_function("policy evaluate: denied DeleteObject", |b| b.iter(|| evaluate(&[&policy], black_box(&denied))));
    c.bench_function("policy parse", |b| b.iter(|| Policy::parse(black_box(DOC), Kind::Bucket, Some("media"))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
