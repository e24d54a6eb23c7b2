//! Browser-form uploads (`POST /bucket` with `multipart/form-data`).
//!
//! s3s parses the form, checks the SigV4 (or V2) signature over the policy
//! document, refuses an expired or malformed policy, checks the policy's
//! conditions, and answers `success_action_status` / `success_action_redirect`.
//! Tessera adds what S3 does beyond that:
//!
//! - `${filename}` in the `key` field becomes the uploaded file's name
//!   (the form's file part is sniffed as the body streams past, [`Sniff`]);
//! - form fields that stand for headers (`x-amz-acl`, `x-amz-grant-*`, SSE,
//!   object lock, tagging, storage class, website redirect) are judged as the
//!   headers would be: ACLs enforced, the rest refused (SSE and tagging
//!   too: PutObject enforces them, this path does not);
//! - the upload is authorized as `s3:PutObject` on the final key (the access
//!   check proper cannot: the key is in the body);
//! - a failed policy condition is `403 AccessDenied` ("Invalid according to
//!   Policy"), as S3 answers, where s3s says `400 InvalidPolicyDocument`
//!   ([`policy_failure_as_s3_says`]).
//!
//! s3s holds the file in memory before the operation runs, so a form upload
//! is capped at `post_max_bytes` (`EntityTooLarge` above); larger uploads
//! use PUT or multipart uploads, which stream.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Buf;
use http::{HeaderMap, HeaderName, HeaderValue};
use s3s::dto::PostObjectInput;
use s3s::{S3Request, S3Result, s3_error};

/// What the form said before its file, once seen (a request extension):
/// the file's name and the plain fields.
#[derive(Clone, Default)]
pub struct FileName(pub Arc<Mutex<Option<Sniffed>>>);

/// The fields before a form's file part, and the file's name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sniffed {
    /// The `filename` of the part named `file` (its base name).
    pub file_name: String,
    /// The fields before it, names lower-cased.
    pub fields: Vec<(String, String)>,
}

/// How far into a form its file part's headers are looked for (AWS caps
/// the fields before the file at 20 KB).
const SNIFF_LIMIT: usize = 64 * 1024;

/// For a form upload, a fresh [`FileName`] slot put in `extensions`.
pub fn file_name_slot(
    method: &http::Method,
    headers: &HeaderMap,
    extensions: &mut http::Extensions,
) -> Option<FileName> {
    let form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    (method == http::Method::POST && form).then(|| {
        let slot = FileName::default();
        extensions.insert(slot.clone());
        slot
    })
}

/// A request body that reads the form's fields and the `filename` of its
/// part named `file` in its first [`SNIFF_LIMIT`] bytes as they pass,
/// copying nothing after.
pub struct Sniff<B> {
    inner: B,
    seen: Vec<u8>,
    slot: FileName,
    done: bool,
}

impl<B> Sniff<B> {
    /// Sniffs `inner` into `slot`.
    pub fn new(inner: B, slot: FileName) -> Self {
        Sniff { inner, seen: Vec::new(), slot, done: false }
    }

    fn look(&mut self, chunk: &[u8]) {
        let room = SNIFF_LIMIT.saturating_sub(self.seen.len());
        self.seen.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if let Some(found) = sniff(&self.seen) {
            if let Ok(mut s) = self.slot.0.lock() {
                *s = Some(found);
            }
            self.done = true;
        } else if self.seen.len() >= SNIFF_LIMIT {
            self.done = true;
        }
        if self.done {
            self.seen = Vec::new();
        }
    }
}

impl<B> http_body::Body for Sniff<B>
where
    B: http_body::Body + Unpin,
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if !self.done
            && let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let bytes = data.chunk().to_vec();
            self.look(&bytes);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The parameters of a `Content-Disposition` value, names lower-cased.
fn disposition(v: &str) -> Vec<(String, String)> {
    v.split(';')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

/// The fields of `form` up to its part named `file`, and that part's
/// file name — `None` until the file part's headers are whole.
fn sniff(form: &[u8]) -> Option<Sniffed> {
    let text = String::from_utf8_lossy(form);
    // The boundary is the first line ("--" and the boundary).
    let (first, _) = text.split_once("\r\n")?;
    let delimiter = format!("\r\n{first}");
    let mut fields = Vec::new();
    let mut rest = &text[first.len() + 2..];
    loop {
        let (head, after) = rest.split_once("\r\n\r\n")?;
        let params = head
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(h, _)| h.trim().eq_ignore_ascii_case("content-disposition"))
            .map(|(_, v)| disposition(v))
            .unwrap_or_default();
        let name = params.iter().find(|(k, _)| k == "name").map(|(_, v)| v.to_ascii_lowercase()).unwrap_or_default();
        if name == "file" {
            let file = params.iter().find(|(k, _)| k == "filename").map(|(_, v)| v.as_str()).unwrap_or("");
            // Browsers send a base name; some old ones the whole path.
            let file_name = file.rsplit(['/', '\\']).next().unwrap_or("").to_owned();
            return Some(Sniffed { file_name, fields });
        }
        let (value, next) = after.split_once(delimiter.as_str())?;
        fields.push((name, value.to_owned()));
        rest = next.strip_prefix("\r\n")?;
    }
}

/// Form fields that stand for the request headers of the same names.
const HEADER_FIELDS: [&str; 7] = [
    "x-amz-acl",
    "x-amz-grant-",
    "x-amz-server-side-encryption",
    "x-amz-object-lock-",
    "x-amz-storage-class",
    "x-amz-tagging",
    "x-amz-website-redirect-location",
];

fn put(h: &mut HeaderMap, name: HeaderName, v: &str) -> S3Result<()> {
    let value =
        HeaderValue::from_str(v).map_err(|_| s3_error!(InvalidArgument, "form field {name} is not a header value"))?;
    h.append(name, value);
    Ok(())
}

/// Makes a form upload what the equivalent PutObject would be: `${filename}`
/// substituted in its key, and its header-like fields copied to the
/// request's headers, then refused where PutObject would refuse them.
pub fn prepare(req: &mut S3Request<PostObjectInput>) -> S3Result<()> {
    let sniffed = req.extensions.get::<FileName>().and_then(|f| f.0.lock().ok().and_then(|n| n.clone()));
    // s3s has checked the whole form; fields beyond the sniffed prefix
    // (more than 64 KiB of them) cannot be judged here: refused.
    let sniffed =
        sniffed.ok_or_else(|| s3_error!(MalformedPOSTRequest, "the form's fields before its file are too long"))?;
    if req.input.key.contains("${filename}") {
        req.input.key = req.input.key.replace("${filename}", &sniffed.file_name);
    }
    if req.input.key.is_empty() {
        return Err(s3_error!(InvalidArgument, "the form's key is empty"));
    }
    for (name, value) in &sniffed.fields {
        let header = match name.as_str() {
            "acl" => "x-amz-acl",
            "tagging" => "x-amz-tagging",
            n if HEADER_FIELDS.iter().any(|p| n.starts_with(p)) => n,
            _ => continue,
        };
        let header = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| s3_error!(InvalidArgument, "form field {name} is not a header name"))?;
        put(&mut req.headers, header, value)?;
    }
    // Judged as a form upload, not a PutObject: the form path enforces
    // neither SSE nor tagging, which PutObject now does.
    match crate::unenforced::refusal("PostObject", &req.headers, None) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// s3s names a form upload's key in its answer (the 201 document, the 303
/// `Location`) as the form gave it; S3 names the key stored, with
/// `${filename}` substituted.
pub fn name_stored_key(resp: &mut http::Response<s3s::Body>, slot: &FileName) {
    let Some(name) = slot.0.lock().ok().and_then(|n| n.clone()).map(|s| s.file_name) else { return };
    if let Some(loc) = resp.headers().get(http::header::LOCATION).and_then(|v| v.to_str().ok())
        && loc.contains("%24%7Bfilename%7D")
        && let Ok(v) = HeaderValue::from_str(&loc.replace("%24%7Bfilename%7D", &percent_encode(&name)))
    {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    let Some(xml) = resp.body().bytes() else { return };
    let text = String::from_utf8_lossy(&xml);
    if !text.starts_with("<?xml") || !text.contains("<PostResponse>") || !text.contains("${filename}") {
        return;
    }
    let escaped = name.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let fixed = text.replace("${filename}", &escaped);
    if resp.headers().contains_key(http::header::CONTENT_LENGTH) {
        resp.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(fixed.len()));
    }
    *resp.body_mut() = s3s::Body::from(fixed);
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// s3s answers a failed POST policy condition `400 InvalidPolicyDocument`;
/// S3 answers `403 AccessDenied` ("Invalid according to Policy: Policy
/// Condition failed"). A malformed policy stays `400 InvalidPolicyDocument`.
pub fn policy_failure_as_s3_says(status: http::StatusCode, xml: &str) -> Option<String> {
    if status != http::StatusCode::BAD_REQUEST || !xml.contains("<Code>InvalidPolicyDocument</Code>") {
        return None;
    }
    let message = xml.split("<Message>").nth(1)?.split("</Message>").next()?;
    let condition = message.starts_with("Policy condition") || message.starts_with("Bucket in form field");
    condition.then(|| {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Invalid according to Policy: Policy Condition failed: {message}</Message></Error>"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_the_file_name_are_found_once_the_file_part_begins() {
        let form = "--b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nuploads/${filename}\r\n--b\r\nContent-Disposition: form-data; name=\"acl\"\r\n\r\npublic-read\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip 1.mp4\"\r\nContent-Type: video/mp4\r\n\r\nDATA";
        let s = sniff(form.as_bytes()).unwrap();
        assert_eq!(s.file_name, "clip 1.mp4");
        assert_eq!(s.fields, [("key".into(), "uploads/${filename}".into()), ("acl".into(), "public-read".into())]);
        let cut = &form[..form.find("Content-Type: video").unwrap()];
        assert_eq!(sniff(cut.as_bytes()), None, "the file part's headers are not whole yet");
        let filename_is_file =
            "--b\r\nContent-Disposition: form-data; name=\"x\"; filename=\"file\"\r\n\r\nv\r\n--b\r\n";
        assert_eq!(sniff(filename_is_file.as_bytes()), None);
        let path = "--b\r\nContent-Disposition: form-data; filename=\"C:\\Users\\me\\a.ts\"; name=\"file\"\r\n\r\n";
        assert_eq!(sniff(path.as_bytes()).unwrap().file_name, "a.ts");
    }

    #[test]
    fn condition_failures_become_access_denied() {
        let failed = "<Error><Code>InvalidPolicyDocument</Code><Message>Policy condition 'starts-with' for field 'key' failed: expected prefix 'a/', got 'b'</Message></Error>";
        let out = policy_failure_as_s3_says(http::StatusCode::BAD_REQUEST, failed).unwrap();
        assert!(out.contains("<Code>AccessDenied</Code>") && out.contains("Invalid according to Policy"), "{out}");
        let malformed =
            "<Error><Code>InvalidPolicyDocument</Code><Message>failed to parse POST policy</Message></Error>";
        assert_eq!(policy_failure_as_s3_says(http::StatusCode::BAD_REQUEST, malformed), None);
        assert_eq!(policy_failure_as_s3_says(http::StatusCode::FORBIDDEN, failed), None);
    }
}
