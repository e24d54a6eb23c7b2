//! The admin API, buckets: list, info with usage, create, delete, quota
//! and EC profile (docs/admin-api.md).
//!
//! | method and path              | action                 |
//! |------------------------------|------------------------|
//! | `GET    buckets`             | `admin:ListBuckets`    |
//! | `GET    buckets/NAME`        | `admin:BucketInfo`     |
//! | `POST   buckets`             | `admin:CreateBucket`   |
//! | `DELETE buckets/NAME`        | `admin:DeleteBucket`   |
//! | `PUT    buckets/NAME/quota`  | `admin:SetBucketQuota` |
//! | `PUT    buckets/NAME/ec`     | `admin:SetBucketEc`    |

use http::StatusCode;
use serde_json::{Value, json};
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::{
    BucketRecord, BucketUsageReply, CreateBucket, DeleteBucket, EcProfile, SetBucketEc, SetBucketQuota,
};

use super::cluster::bad;
use super::{AdminRoute, Answer, fail, unavailable};

/// Largest k + m a bucket may ask for.
const MAX_SHARDS: u32 = 32;

fn ec_json(ec: Option<&EcProfile>) -> Value {
    ec.map_or(Value::Null, |e| json!({"k": e.k, "m": e.m, "block_len": e.block_len}))
}

fn bucket_json(b: &BucketRecord) -> Value {
    let versioning = match b.versioning {
        0 => "never enabled",
        1 => "enabled",
        _ => "suspended",
    };
    json!({
        "name": b.name,
        "owner": b.owner,
        "created_ms": b.created_ms,
        "versioning": versioning,
        "object_lock": b.object_lock,
        "quota_bytes": (b.quota_bytes > 0).then_some(b.quota_bytes),
        "ec": ec_json(b.ec.as_ref()),
    })
}

fn usage_json(u: &BucketUsageReply) -> Value {
    json!({
        "objects": u.objects,
        "bytes": u.bytes,
        "noncurrent_versions": u.noncurrent_versions,
        "noncurrent_bytes": u.noncurrent_bytes,
        "delete_markers": u.delete_markers,
        "uploads": u.uploads,
        "upload_bytes": u.upload_bytes,
        "quota_counted_bytes": u.bytes + u.noncurrent_bytes + u.upload_bytes,
    })
}

impl AdminRoute {
    async fn record(&self, bucket: &str) -> Result<BucketRecord, Answer> {
        let r = self.meta.get_bucket(bucket).await.map_err(unavailable)?;
        r.bucket.ok_or_else(|| fail(StatusCode::NOT_FOUND, "NoSuchBucket", format!("no bucket {bucket}")))
    }

    async fn usage(&self, bucket: &str) -> Result<BucketUsageReply, Answer> {
        let u = self.meta.bucket_usage(bucket).await.map_err(unavailable)?;
        match u.failure {
            Some(f) => Err(fail(StatusCode::NOT_FOUND, "NoSuchBucket", f.message)),
            None => Ok(u),
        }
    }

    pub(super) async fn buckets(&self) -> Result<Answer, Answer> {
        let list = self.meta.list_buckets().await.map_err(unavailable)?.buckets;
        Ok(Answer(StatusCode::OK, json!({"buckets": list.iter().map(bucket_json).collect::<Vec<_>>()})))
    }

    pub(super) async fn bucket_info(&self, bucket: &str) -> Result<Answer, Answer> {
        let rec = self.record(bucket).await?;
        let usage = self.usage(bucket).await?;
        let mut v = bucket_json(&rec);
        v["usage"] = usage_json(&usage);
        Ok(Answer(StatusCode::OK, v))
    }

    /// `{"name", "owner"?}`: the owner is the caller's key unless named.
    pub(super) async fn create_bucket(&self, caller: &str, doc: &Value) -> Result<Answer, Answer> {
        let name = doc["name"].as_str().ok_or_else(|| bad("name is the bucket's name"))?;
        if !s3s::path::check_bucket_name(name) {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "InvalidBucketName",
                format!("{name} is not a valid bucket name"),
            ));
        }
        let owner = doc["owner"].as_str().unwrap_or(caller).to_owned();
        if self.meta.get_access_key(&owner).await.map_err(unavailable)?.key.is_none() {
            return Err(fail(StatusCode::NOT_FOUND, "NoSuchAccessKey", format!("no access key {owner} to own it")));
        }
        let create = CreateBucket { name: name.to_owned(), owner: owner.clone(), ..Default::default() };
        self.write(Op::CreateBucket(create)).await?;
        Ok(Answer(StatusCode::CREATED, json!({"name": name, "owner": owner})))
    }

    pub(super) async fn delete_bucket(&self, bucket: &str) -> Result<Answer, Answer> {
        self.record(bucket).await?;
        self.write(Op::DeleteBucket(DeleteBucket { name: bucket.to_owned() })).await?;
        self.dir.forget_bucket(bucket);
        Ok(Answer(StatusCode::OK, json!({"deleted": bucket})))
    }

    /// `{"quota_bytes": n}` (0 or null: none). A quota below what the bucket
    /// already holds is refused: it would refuse every write at once.
    pub(super) async fn set_quota(&self, bucket: &str, doc: &Value) -> Result<Answer, Answer> {
        let quota = match &doc["quota_bytes"] {
            Value::Null => 0,
            v => v.as_u64().ok_or_else(|| bad("quota_bytes is a number of bytes (0: no quota)"))?,
        };
        let usage = self.usage(bucket).await?;
        let used = usage.bytes + usage.noncurrent_bytes + usage.upload_bytes;
        if quota > 0 && quota < used {
            return Err(fail(
                StatusCode::CONFLICT,
                "QuotaBelowUsage",
                format!("bucket {bucket} already holds {used} bytes, more than a quota of {quota}; delete first"),
            ));
        }
        self.write(Op::SetBucketQuota(SetBucketQuota { bucket: bucket.to_owned(), quota_bytes: quota })).await?;
        self.dir.forget_bucket(bucket);
        Ok(Answer(
            StatusCode::OK,
            json!({"bucket": bucket, "quota_bytes": (quota > 0).then_some(quota), "used_bytes": used}),
        ))
    }

    /// `{"k", "m"}`, or `{"default": true}` for the gateway's. The cluster
    /// must have k + m disks to place the shards on.
    pub(super) async fn set_ec(&self, bucket: &str, doc: &Value) -> Result<Answer, Answer> {
        self.record(bucket).await?;
        let ec = if doc["default"] == json!(true) {
            None
        } else {
            let n = |f: &str| doc[f].as_u64().filter(|v| (1..=u64::from(MAX_SHARDS)).contains(v));
            let (Some(k), Some(m)) = (n("k"), n("m")) else {
                return Err(bad("give k and m (each at least 1), or default: true"));
            };
            let (k, m) = (k as usize, m as usize);
            if k + m > MAX_SHARDS as usize {
                return Err(bad(format!("k + m is at most {MAX_SHARDS}")));
            }
            let view = self.map_view().await?;
            let usable = view.map()?.disks().filter(|(_, _, _, d)| d.writable()).count();
            if usable < k + m {
                return Err(fail(
                    StatusCode::CONFLICT,
                    "NotEnoughDisks",
                    format!("EC {k}+{m} places {} shards on distinct disks; the cluster has {usable} writable", k + m),
                ));
            }
            let layout = tessera_ec::StripeLayout::new(k, m, self.ec.stripe_size).map_err(bad)?;
            Some(EcProfile {
                codec: u32::from(self.ec.codec.as_u16()),
                k: k as u32,
                m: m as u32,
                block_len: layout.block_len() as u32,
            })
        };
        self.write(Op::SetBucketEc(SetBucketEc { bucket: bucket.to_owned(), ec })).await?;
        self.dir.forget_bucket(bucket);
        Ok(Answer(StatusCode::OK, json!({"bucket": bucket, "ec": ec_json(ec.as_ref())})))
    }
}
