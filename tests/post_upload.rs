//! Browser-form uploads (POST object) end to end, with forms built and
//! signed (SigV4) as a browser page's script would: within its policy an
//! upload is stored (`${filename}` substituted, metadata, content type,
//! `success_action_status` / `_redirect`, an ACL field enforced); outside
//! it, the error AWS gives — and nothing stored.

#![allow(clippy::unwrap_used)]

mod support;

use base64::Engine as _;
use support::{ACCESS_KEY, Cluster, SECRET_KEY, get_all, header, raw_http};

const BOUNDARY: &str = "----tesseraFormBoundary7MA4YWxkTrZu0gW";

struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// A form signed by `access`/`secret` for a policy with `conditions`,
    /// expiring `expires_in` seconds from now (negative: already expired).
    fn signed(access: &str, secret: &str, conditions: serde_json::Value, expires_in: i64) -> Form {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let date = support::sig::amz_date(now);
        let day = &date[..8];
        let credential = format!("{access}/{day}/us-east-1/s3/aws4_request");
        let expiration = support::sig::amz_date(now.saturating_add_signed(expires_in));
        let expiration = format!(
            "{}-{}-{}T{}:{}:{}.000Z",
            &expiration[..4],
            &expiration[4..6],
            &expiration[6..8],
            &expiration[9..11],
            &expiration[11..13],
            &expiration[13..15]
        );
        let mut conds = conditions.as_array().unwrap().clone();
        conds.push(serde_json::json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}));
        conds.push(serde_json::json!({"x-amz-credential": credential}));
        conds.push(serde_json::json!({"x-amz-date": date}));
        let policy = serde_json::json!({"expiration": expiration, "conditions": conds}).to_string();
        let policy = base64::engine::general_purpose::STANDARD.encode(policy);
        let signature = hex::encode(support::sig::hmac(&support::sig::signing_key(secret, day), &policy));
        let fields = [
            ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
            ("x-amz-credential", credential.as_str()),
            ("x-amz-date", date.as_str()),
            ("policy", policy.as_str()),
            ("x-amz-signature", signature.as_str()),
        ];
        Form { fields: fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect() }
    }

    fn with(mut self, k: &str, v: &str) -> Form {
        self.fields.push((k.to_owned(), v.to_owned()));
        self
    }

    fn set(mut self, k: &str, v: &str) -> Form {
        for f in &mut self.fields {
            if f.0 == k {
                f.1 = v.to_owned();
            }
        }
        self
    }

    /// The multipart body, the file (named `file_name`) last, as S3 requires.
    fn body(&self, file_name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        for (k, v) in &self.fields {
            b.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
            );
        }
        b.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        b.extend_from_slice(data);
        b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        b
    }
}

async fn post(
    cluster: &Cluster,
    bucket: &str,
    form: &Form,
    file_name: &str,
    data: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let body = form.body(file_name, data);
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let len = body.len().to_string();
    let headers = [("content-type", ct.as_str()), ("content-length", len.as_str())];
    let (status, h, text) = raw_http(cluster.gateway_addrs[0], "POST", &format!("/{bucket}"), &headers, &body).await;
    (status, h, String::from_utf8_lossy(&text).into_owned())
}

fn error_code(xml: &str) -> &str {
    xml.split("<Code>").nth(1).and_then(|s| s.split("</Code>").next()).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_form_uploads_within_and_outside_their_policy() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let s3 = cluster.client(0);
    s3.create_bucket().bucket("forms").send().await.unwrap();
    let conditions = |extra: serde_json::Value| {
        let mut c = vec![
            serde_json::json!({"bucket": "forms"}),
            serde_json::json!(["starts-with", "$key", "uploads/"]),
            serde_json::json!(["content-length-range", 1, 10_000]),
            serde_json::json!(["starts-with", "$Content-Type", "video/"]),
            serde_json::json!(["starts-with", "$x-amz-meta-title", ""]),
            serde_json::json!({"success_action_status": "201"}),
        ];
        c.extend(extra.as_array().unwrap().iter().cloned());
        serde_json::Value::Array(c)
    };
    let form = |extra: serde_json::Value| {
        Form::signed(ACCESS_KEY, SECRET_KEY, conditions(extra), 300)
            .with("key", "uploads/${filename}")
            .with("Content-Type", "video/mp4")
            .with("x-amz-meta-title", "first clip")
            .with("success_action_status", "201")
    };
    let clip = support::bytes(5_000, 7);

    // Within the policy: stored under the file's name, with its type and metadata.
    let (status, _, xml) = post(&cluster, "forms", &form(serde_json::json!([])), "clip.mp4", &clip).await;
    assert_eq!(status, 201, "{xml}");
    assert!(xml.contains("<Key>uploads/clip.mp4</Key>") && xml.contains("<Bucket>forms</Bucket>"), "{xml}");
    assert_eq!(get_all(&s3, "forms", "uploads/clip.mp4").await, clip);
    let head = s3.head_object().bucket("forms").key("uploads/clip.mp4").send().await.unwrap();
    assert_eq!(head.content_type(), Some("video/mp4"));
    assert_eq!(head.metadata().and_then(|m| m.get("title")).map(String::as_str), Some("first clip"));

    // success_action_redirect: 303 to the page, naming what was stored.
    let redirect = Form::signed(
        ACCESS_KEY,
        SECRET_KEY,
        serde_json::json!([{"bucket": "forms"}, ["starts-with", "$key", "uploads/"], {"success_action_redirect": "http://example.com/done"}]),
        300,
    )
    .with("key", "uploads/r.ts")
    .with("success_action_redirect", "http://example.com/done");
    let (status, headers, body) = post(&cluster, "forms", &redirect, "r.ts", b"redirected").await;
    assert_eq!(status, 303, "{body}");
    let location = header(&headers, "location").unwrap();
    assert!(location.starts_with("http://example.com/done?") && location.contains("key=uploads%2Fr.ts"), "{location}");

    // Outside the policy: the AWS error, nothing stored.
    let outside: Vec<(&str, Form, u16, &str)> = vec![
        ("key outside the prefix", form(serde_json::json!([])).set("key", "private/x.mp4"), 403, "AccessDenied"),
        ("wrong content type", form(serde_json::json!([])).set("Content-Type", "text/html"), 403, "AccessDenied"),
        (
            "a field the policy does not name",
            form(serde_json::json!([])).with("x-amz-meta-extra", "x"),
            403,
            "AccessDenied",
        ),
        ("the wrong bucket in the form", form(serde_json::json!([])).with("bucket", "other"), 403, "AccessDenied"),
        (
            "expired",
            Form::signed(ACCESS_KEY, SECRET_KEY, conditions(serde_json::json!([])), -60)
                .with("key", "uploads/${filename}")
                .with("Content-Type", "video/mp4")
                .with("x-amz-meta-title", "t")
                .with("success_action_status", "201"),
            403,
            "AccessDenied",
        ),
        ("malformed policy", form(serde_json::json!([])).set("policy", "bm90IGpzb24="), 400, "InvalidPolicyDocument"),
        (
            "wrong signature",
            form(serde_json::json!([])).set("x-amz-signature", &"0".repeat(64)),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "an unknown key",
            Form::signed("NOSUCHKEY00000000000", SECRET_KEY, conditions(serde_json::json!([])), 300)
                .with("key", "uploads/${filename}")
                .with("Content-Type", "video/mp4")
                .with("x-amz-meta-title", "t")
                .with("success_action_status", "201"),
            403,
            "InvalidAccessKeyId",
        ),
        (
            "encryption asked for in a field",
            form(serde_json::json!([{"x-amz-server-side-encryption": "AES256"}]))
                .with("x-amz-server-side-encryption", "AES256"),
            501,
            "NotImplemented",
        ),
    ];
    for (what, f, want_status, want_code) in &outside {
        let (status, _, xml) = post(&cluster, "forms", f, "bad.mp4", &clip).await;
        assert_eq!((status, error_code(&xml)), (*want_status, *want_code), "{what}: {xml}");
    }
    let (status, _, xml) = post(&cluster, "forms", &form(serde_json::json!([])), "big.mp4", &vec![1u8; 10_001]).await;
    assert_eq!((status, error_code(&xml)), (400, "EntityTooLarge"), "{xml}");
    let (status, _, xml) = post(&cluster, "forms", &form(serde_json::json!([])), "empty.mp4", b"").await;
    assert_eq!((status, error_code(&xml)), (400, "EntityTooSmall"), "{xml}");
    let listed = s3.list_objects_v2().bucket("forms").send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["uploads/clip.mp4", "uploads/r.ts"], "a refused form stored something");

    // Another key's signed form cannot write into a bucket it may not write.
    let other = "FORMKEY00000000000001";
    support::add_key(&cluster, other, "form-secret-000000000000000000", false).await;
    let theirs = Form::signed(other, "form-secret-000000000000000000", conditions(serde_json::json!([])), 300)
        .with("key", "uploads/${filename}")
        .with("Content-Type", "video/mp4")
        .with("x-amz-meta-title", "t")
        .with("success_action_status", "201");
    let (status, _, xml) = post(&cluster, "forms", &theirs, "theirs.mp4", &clip).await;
    assert_eq!((status, error_code(&xml)), (403, "AccessDenied"), "{xml}");

    // An ACL field is enforced as the header would be.
    let public = form(serde_json::json!([{"acl": "public-read"}])).with("acl", "public-read");
    let (status, _, xml) = post(&cluster, "forms", &public, "public.mp4", &clip).await;
    assert_eq!(status, 201, "{xml}");
    let (status, _, body) = raw_http(cluster.gateway_addrs[0], "GET", "/forms/uploads/public.mp4", &[], b"").await;
    assert_eq!((status, body == clip), (200, true));
    let (status, _, _) = raw_http(cluster.gateway_addrs[0], "GET", "/forms/uploads/clip.mp4", &[], b"").await;
    assert_eq!(status, 403, "a form upload without an ACL is private");
    cluster.shutdown().await;
}
