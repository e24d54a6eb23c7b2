//! ACLs end to end (aws-sdk-s3 and plain HTTP against an in-process
//! cluster): canned ACLs and grants on buckets and objects allow exactly
//! what they grant, to anonymous requests too; an explicit Deny and the
//! public access block override them; a bucket with ACLs disabled refuses
//! them; every refusal stores nothing.

#![allow(clippy::unwrap_used)]

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketCannedAcl, ObjectCannedAcl, ObjectOwnership, OwnershipControls, OwnershipControlsRule, Permission,
    PublicAccessBlockConfiguration, Type,
};
use support::{Cluster, add_key, code, denied, get_all, raw_http};

const OTHER: &str = "OTHERKEY0000000000001";

async fn anon(cluster: &Cluster, method: &str, target: &str, body: &[u8]) -> u16 {
    let len = body.len().to_string();
    raw_http(cluster.gateway_addrs[0], method, target, &[("content-length", &len)], body).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canned_acls_and_grants_allow_what_they_grant() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let owner = cluster.client(0);
    let other = add_key(&cluster, OTHER, "other-secret-0000000000000000", false).await;
    let put = |key: &'static str, acl: Option<ObjectCannedAcl>| {
        owner.put_object().bucket("pub").key(key).set_acl(acl).body(ByteStream::from_static(b"segment")).send()
    };

    // A public-read bucket lists to anyone; its objects stay private unless their own ACL says otherwise.
    owner.create_bucket().bucket("pub").acl(BucketCannedAcl::PublicRead).send().await.unwrap();
    put("private.ts", None).await.unwrap();
    put("public.ts", Some(ObjectCannedAcl::PublicRead)).await.unwrap();
    put("members.ts", Some(ObjectCannedAcl::AuthenticatedRead)).await.unwrap();
    assert_eq!(anon(&cluster, "GET", "/pub?list-type=2", b"").await, 200);
    assert_eq!(anon(&cluster, "HEAD", "/pub", b"").await, 200);
    assert_eq!(anon(&cluster, "GET", "/pub/private.ts", b"").await, 403);
    assert_eq!(anon(&cluster, "GET", "/pub/public.ts", b"").await, 200);
    assert_eq!(anon(&cluster, "HEAD", "/pub/public.ts", b"").await, 200);
    assert_eq!(anon(&cluster, "GET", "/pub/members.ts", b"").await, 403);
    assert_eq!(get_all(&other, "pub", "members.ts").await, b"segment");
    denied(other.get_object().bucket("pub").key("private.ts").send().await);
    // READ grants neither writes nor ACL reads.
    assert_eq!(anon(&cluster, "PUT", "/pub/new.ts", b"evil").await, 403);
    assert_eq!(anon(&cluster, "DELETE", "/pub/public.ts", b"").await, 403);
    assert_eq!(anon(&cluster, "GET", "/pub/public.ts?acl", b"").await, 403);
    assert_eq!(anon(&cluster, "GET", "/pub?acl", b"").await, 403);
    denied(other.put_object_acl().bucket("pub").key("public.ts").acl(ObjectCannedAcl::Private).send().await);
    denied(other.put_bucket_acl().bucket("pub").acl(BucketCannedAcl::PublicReadWrite).send().await);

    // What the owner reads back.
    let acl = owner.get_object_acl().bucket("pub").key("public.ts").send().await.unwrap();
    let shown: Vec<(Option<&str>, Option<&str>, &str)> = acl
        .grants()
        .iter()
        .map(|g| {
            let ge = g.grantee().unwrap();
            (ge.id(), ge.uri(), g.permission().unwrap().as_str())
        })
        .collect();
    assert_eq!(
        shown,
        [
            (Some(support::ACCESS_KEY), None, "FULL_CONTROL"),
            (None, Some("http://acs.amazonaws.com/groups/global/AllUsers"), "READ")
        ]
    );
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(support::ACCESS_KEY));
    let private = owner.get_object_acl().bucket("pub").key("private.ts").send().await.unwrap();
    assert_eq!(private.grants().len(), 1);
    assert_eq!(private.grants()[0].permission(), Some(&Permission::FullControl));

    // Grants by access key ID: read to one key, ACL writes to it as well.
    owner
        .put_object_acl()
        .bucket("pub")
        .key("private.ts")
        .grant_read(format!("id={OTHER}"))
        .grant_write_acp(format!("id=\"{OTHER}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(get_all(&other, "pub", "private.ts").await, b"segment");
    assert_eq!(anon(&cluster, "GET", "/pub/private.ts", b"").await, 403);
    denied(other.get_object_acl().bucket("pub").key("private.ts").send().await);
    other.put_object_acl().bucket("pub").key("private.ts").acl(ObjectCannedAcl::PublicRead).send().await.unwrap();
    assert_eq!(anon(&cluster, "GET", "/pub/private.ts", b"").await, 200);

    // public-read-write on the bucket: anonymous writes and deletes.
    owner.put_bucket_acl().bucket("pub").acl(BucketCannedAcl::PublicReadWrite).send().await.unwrap();
    let bucket_acl = owner.get_bucket_acl().bucket("pub").send().await.unwrap();
    assert_eq!(bucket_acl.grants().len(), 3, "{bucket_acl:?}");
    assert_eq!(anon(&cluster, "PUT", "/pub/dropped.ts", b"dropbox").await, 200);
    assert_eq!(get_all(&owner, "pub", "dropped.ts").await, b"dropbox", "the bucket owner owns what others write");
    assert_eq!(anon(&cluster, "GET", "/pub/dropped.ts", b"").await, 403, "written private");
    assert_eq!(anon(&cluster, "DELETE", "/pub/dropped.ts", b"").await, 204);

    // A copy gets the ACL its request sets, never its source's.
    owner.copy_object().bucket("pub").key("copy.ts").copy_source("pub/public.ts").send().await.unwrap();
    assert_eq!(anon(&cluster, "GET", "/pub/copy.ts", b"").await, 403);
    // A multipart upload's ACL is the completed object's.
    let up = owner
        .create_multipart_upload()
        .bucket("pub")
        .key("mp.ts")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part = owner
        .upload_part()
        .bucket("pub")
        .key("mp.ts")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"one part"))
        .send()
        .await
        .unwrap();
    let done = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
        .build();
    owner
        .complete_multipart_upload()
        .bucket("pub")
        .key("mp.ts")
        .upload_id(id)
        .multipart_upload(done)
        .send()
        .await
        .unwrap();
    assert_eq!(anon(&cluster, "GET", "/pub/mp.ts", b"").await, 200);

    // An explicit Deny beats a grant.
    let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pub/public.ts"}]}"#;
    owner.put_bucket_policy().bucket("pub").policy(deny).send().await.unwrap();
    assert_eq!(anon(&cluster, "GET", "/pub/public.ts", b"").await, 403);
    assert_eq!(anon(&cluster, "GET", "/pub/mp.ts", b"").await, 200);
    owner.delete_bucket_policy().bucket("pub").send().await.unwrap();

    // Bad grants: refused, nothing changed.
    let e = owner.put_object_acl().bucket("pub").key("mp.ts").grant_read("emailAddress=\"a@example.com\"").send().await;
    assert_eq!(code(&e.unwrap_err()), "UnresolvableGrantByEmailAddress");
    let e = owner.put_object_acl().bucket("pub").key("mp.ts").grant_read("uri=\"http://example.com/all\"").send().await;
    assert_eq!(code(&e.unwrap_err()), "InvalidArgument");
    let e = owner.put_object_acl().bucket("pub").key("mp.ts").acl(ObjectCannedAcl::from("everyone")).send().await;
    assert_eq!(code(&e.unwrap_err()), "InvalidArgument");
    let e = owner
        .put_object()
        .bucket("pub")
        .key("both.ts")
        .acl(ObjectCannedAcl::PublicRead)
        .grant_read(format!("id={OTHER}"))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(code(&e.unwrap_err()), "InvalidRequest");
    let e = owner.put_object_acl().bucket("pub").key("missing.ts").acl(ObjectCannedAcl::PublicRead).send().await;
    assert_eq!(code(&e.unwrap_err()), "NoSuchKey");
    assert_eq!(anon(&cluster, "GET", "/pub/mp.ts", b"").await, 200);
    let e = owner.head_object().bucket("pub").key("both.ts").send().await.unwrap_err();
    assert_eq!(support::status(&e), 404, "the refused PUT stored nothing");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn public_access_blocks_and_disabled_acls_override_grants() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let owner = cluster.client(0);
    owner.create_bucket().bucket("pub").send().await.unwrap();
    let body = || ByteStream::from_static(b"segment");
    owner.put_object().bucket("pub").key("a.ts").acl(ObjectCannedAcl::PublicRead).body(body()).send().await.unwrap();
    assert_eq!(anon(&cluster, "GET", "/pub/a.ts", b"").await, 200);

    // IgnorePublicAcls: public grants count for nothing; BlockPublicAcls: none can be set.
    let block = |ignore: bool, block: bool| {
        PublicAccessBlockConfiguration::builder().ignore_public_acls(ignore).block_public_acls(block).build()
    };
    let pab = owner.put_public_access_block().bucket("pub");
    pab.public_access_block_configuration(block(true, true)).send().await.unwrap();
    assert_eq!(anon(&cluster, "GET", "/pub/a.ts", b"").await, 403);
    let e = owner.put_object().bucket("pub").key("b.ts").acl(ObjectCannedAcl::PublicRead).body(body()).send().await;
    assert_eq!(code(&e.unwrap_err()), "AccessDenied");
    let e = owner.head_object().bucket("pub").key("b.ts").send().await.unwrap_err();
    assert_eq!(support::status(&e), 404, "the refused PUT stored nothing");
    let e = owner.put_bucket_acl().bucket("pub").acl(BucketCannedAcl::PublicRead).send().await;
    assert_eq!(code(&e.unwrap_err()), "AccessDenied");
    // A private ACL is still accepted.
    owner.put_object().bucket("pub").key("c.ts").acl(ObjectCannedAcl::Private).body(body()).send().await.unwrap();
    owner.delete_public_access_block().bucket("pub").send().await.unwrap();
    assert_eq!(anon(&cluster, "GET", "/pub/a.ts", b"").await, 200);

    // ACLs cannot be disabled while the bucket ACL grants others; once disabled, grants grant nothing.
    owner.put_bucket_acl().bucket("pub").acl(BucketCannedAcl::PublicRead).send().await.unwrap();
    let enforced = || {
        OwnershipControls::builder()
            .rules(
                OwnershipControlsRule::builder()
                    .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let e = owner.put_bucket_ownership_controls().bucket("pub").ownership_controls(enforced()).send().await;
    assert_eq!(code(&e.unwrap_err()), "InvalidBucketAclWithObjectOwnership");
    owner.put_bucket_acl().bucket("pub").acl(BucketCannedAcl::Private).send().await.unwrap();
    owner.put_bucket_ownership_controls().bucket("pub").ownership_controls(enforced()).send().await.unwrap();
    let got = owner.get_bucket_ownership_controls().bucket("pub").send().await.unwrap();
    let rule = &got.ownership_controls().unwrap().rules()[0];
    assert_eq!(rule.object_ownership(), &ObjectOwnership::BucketOwnerEnforced);
    assert_eq!(anon(&cluster, "GET", "/pub/a.ts", b"").await, 403, "a stored grant grants nothing now");
    let e = owner.put_object().bucket("pub").key("d.ts").acl(ObjectCannedAcl::PublicRead).body(body()).send().await;
    assert_eq!(code(&e.unwrap_err()), "AccessControlListNotSupported");
    let e = owner.head_object().bucket("pub").key("d.ts").send().await.unwrap_err();
    assert_eq!(support::status(&e), 404, "the refused PUT stored nothing");
    owner
        .put_object()
        .bucket("pub")
        .key("e.ts")
        .acl(ObjectCannedAcl::BucketOwnerFullControl)
        .body(body())
        .send()
        .await
        .unwrap();
    let acl = owner.get_object_acl().bucket("pub").key("a.ts").send().await.unwrap();
    assert_eq!(acl.grants().len(), 1, "ACLs disabled: the owner's full control only");
    assert_eq!(acl.grants()[0].grantee().map(|g| g.r#type()), Some(&Type::CanonicalUser));
    // A bucket created BucketOwnerEnforced refuses a public ACL at creation.
    let e = owner
        .create_bucket()
        .bucket("closed")
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await;
    assert_eq!(code(&e.unwrap_err()), "InvalidBucketAclWithObjectOwnership");
    assert_eq!(support::status(&owner.head_bucket().bucket("closed").send().await.unwrap_err()), 404);
    let e = owner.create_bucket().bucket("writer").object_ownership(ObjectOwnership::ObjectWriter).send().await;
    assert_eq!(code(&e.unwrap_err()), "NotImplemented");
    cluster.shutdown().await;
}

/// A bucket owner limited by identity policies gets nothing from its own
/// entry in a canned ACL (FULL_CONTROL): only what its policies allow, and
/// what the ACL grants everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_limited_by_policies_gets_nothing_from_its_own_acl_entry() {
    use tessera_rpc::proto::meta::command::Op;
    use tessera_rpc::proto::meta::{Command, PolicyRecord, PutPolicy, UpdateAccessKey};
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let limited = add_key(&cluster, "LIMITED0000000000001", "limited-secret-00000000000000", false).await;
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:CreateBucket","s3:GetObject","s3:PutBucketAcl"],"Resource":"*"}]}"#;
    for op in [
        Op::PutPolicy(PutPolicy {
            policy: Some(PolicyRecord { name: "create-and-read".into(), document: doc.into(), created_ms: 0 }),
        }),
        Op::UpdateAccessKey(UpdateAccessKey {
            access_key_id: "LIMITED0000000000001".into(),
            policies: vec!["create-and-read".into()],
            disabled: false,
            expires_ms: 0,
        }),
    ] {
        cluster.meta_client.write(Command { now_ms: 0, op: Some(op) }).await.unwrap();
    }
    limited.create_bucket().bucket("mine").acl(BucketCannedAcl::PublicRead).send().await.unwrap();
    let acl = cluster.client(0).get_bucket_acl().bucket("mine").send().await;
    assert_eq!(code(&acl.unwrap_err()), "AccessDenied", "another key");
    // Its ACL names it with FULL_CONTROL, but its policies allow no PutObject;
    // what public-read grants everyone (the listing) it gets too.
    let e = limited.put_object().bucket("mine").key("x").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(code(&e.unwrap_err()), "AccessDenied");
    limited.list_objects_v2().bucket("mine").send().await.unwrap();
    let e = limited.get_bucket_acl().bucket("mine").send().await;
    assert_eq!(code(&e.unwrap_err()), "AccessDenied", "READ_ACP comes from its own entry only");
    cluster.shutdown().await;
}
