#!/usr/bin/env python3
"""Real S3 clients against a running Tessera endpoint.

aws-cli, boto3, rclone, s3cmd and minio-py each do what their users do, and
every step checks its result. A failure names the target, the client and the
command, and the run stops with exit status 1.

    clients.py --endpoint http://127.0.0.1:9000 --access-key AK --secret-key SK \
               --label server --work /tmp/dir
"""

import argparse
import concurrent.futures
import datetime
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

MiB = 1 << 20


class StepFailed(Exception):
    pass


class Run:
    def __init__(self, args):
        self.args = args
        self.endpoint = args.endpoint.rstrip("/")
        self.hostport = self.endpoint.split("://", 1)[1]
        self.work = args.work
        self.bin = os.path.dirname(sys.executable)
        self.env = dict(os.environ)
        self.env.update(
            AWS_ACCESS_KEY_ID=args.access_key,
            AWS_SECRET_ACCESS_KEY=args.secret_key,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=os.path.join(self.work, "aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=os.path.join(self.work, "aws-credentials"),
        )
        self.steps = 0
        if args.ca_bundle:
            # aws-cli and boto3 get it explicitly (--ca-bundle, verify=);
            # curl, urllib and urllib3 calls find it in the environment.
            for var in ("CURL_CA_BUNDLE", "SSL_CERT_FILE"):
                self.env[var] = args.ca_bundle
                os.environ[var] = args.ca_bundle

    # -- helpers ---------------------------------------------------------

    def connection(self, netloc):
        """A raw HTTP(S) connection to the endpoint's host."""
        if self.endpoint.startswith("https://"):
            import ssl
            ctx = ssl.create_default_context(cafile=self.args.ca_bundle)
            return http.client.HTTPSConnection(netloc, timeout=60, context=ctx)
        return http.client.HTTPConnection(netloc, timeout=60)

    def step(self, client, command):
        """A context naming the step in any failure."""
        run = self

        class Ctx:
            def __enter__(self):
                run.started = time.monotonic()
                return self

            def __exit__(self, kind, err, tb):
                took = time.monotonic() - run.started
                if err is None:
                    run.steps += 1
                    print(f"  ok   [{run.args.label}] {client}: {command} ({took:.1f}s)", flush=True)
                    return False
                msg = f"FAIL [{run.args.label}] {client}: {command}: {kind.__name__}: {err}"
                raise StepFailed(msg) from err

        return Ctx()

    def sh(self, argv, input=None):
        """Runs a command; returns stdout; raises with stderr on failure."""
        p = subprocess.run(argv, env=self.env, input=input, capture_output=True, timeout=900)
        if p.returncode != 0:
            raise AssertionError(
                f"exit {p.returncode}: {p.stderr.decode(errors='replace').strip()[-1500:]}"
            )
        return p.stdout.decode(errors="replace")

    def aws(self, *argv):
        quiet = ["--only-show-errors"] if argv[:1] == ("s3",) and argv[1] in ("cp", "mv", "rm", "sync") else []
        tls = ["--ca-bundle", self.args.ca_bundle] if self.args.ca_bundle else []
        return self.sh([os.path.join(self.bin, "aws"), "--endpoint-url", self.endpoint, *tls, *argv, *quiet])

    def boto3_client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.args.access_key,
            aws_secret_access_key=self.args.secret_key,
            region_name="us-east-1",
            verify=self.args.ca_bundle,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def path(self, *parts):
        return os.path.join(self.work, *parts)

    @staticmethod
    def random_file(path, size, seed):
        """Deterministic pseudo-random content, written in 1 MiB pieces."""
        block = hashlib.sha256(seed.encode()).digest() * (MiB // 32)
        with open(path, "wb") as f:
            left, n = size, 0
            while left > 0:
                piece = hashlib.sha256(f"{seed}/{n}".encode()).digest() + block[32:]
                f.write(piece[: min(left, MiB)])
                left -= min(left, MiB)
                n += 1

    @staticmethod
    def digest(path):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(MiB), b""):
                h.update(chunk)
        return h.hexdigest()

    def same_file(self, a, b):
        assert os.path.getsize(a) == os.path.getsize(b), f"{b}: {os.path.getsize(b)} bytes, expected {os.path.getsize(a)}"
        assert self.digest(a) == self.digest(b), f"{b} differs from {a}"

    @staticmethod
    def tree(root):
        out = {}
        for d, _, files in os.walk(root):
            for f in files:
                p = os.path.join(d, f)
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
        return out

    def small_files(self, root, n, prefix="f"):
        os.makedirs(root, exist_ok=True)
        for i in range(n):
            sub = os.path.join(root, f"d{i % 10}")
            os.makedirs(sub, exist_ok=True)
            with open(os.path.join(sub, f"{prefix}{i:04}.txt"), "wb") as f:
                f.write((f"file {i} " * (1 + i % 50)).encode())

    # -- clients ---------------------------------------------------------

    def aws_cli(self):
        b = "cli-bucket"
        big = self.path("big.bin")
        self.random_file(big, 105 * MiB, "aws-big")
        with self.step("aws-cli", f"s3 mb s3://{b}"):
            self.aws("s3", "mb", f"s3://{b}")
        with self.step("aws-cli", "s3 cp (105 MiB up, multipart)"):
            self.aws("s3", "cp", big, f"s3://{b}/big.bin")
        with self.step("aws-cli", "s3 cp (105 MiB down) + byte compare"):
            self.aws("s3", "cp", f"s3://{b}/big.bin", self.path("big.down"))
            self.same_file(big, self.path("big.down"))
        with self.step("aws-cli", "s3api head-object"):
            head = json.loads(self.aws("s3api", "head-object", "--bucket", b, "--key", "big.bin"))
            assert head["ContentLength"] == 105 * MiB, head
            assert head["ETag"].strip('"').endswith("-14"), f"multipart ETag expected (14 parts of 8 MiB): {head['ETag']}"
        src = self.path("sync-up")
        self.small_files(src, 500)
        with self.step("aws-cli", "s3 sync (500 files up)"):
            self.aws("s3", "sync", src, f"s3://{b}/sync/")
        with self.step("aws-cli", "s3 sync (500 files down) + compare"):
            dst = self.path("sync-down")
            self.aws("s3", "sync", f"s3://{b}/sync/", dst)
            assert self.tree(src) == self.tree(dst), "the synced-back folder differs"
        with self.step("aws-cli", "s3 sync again (nothing to do)"):
            out = self.aws("s3", "sync", src, f"s3://{b}/sync/", "--dryrun")
            assert out.strip() == "", f"a second sync wanted to copy: {out[:300]}"
        with self.step("aws-cli", "s3 ls --recursive"):
            lines = [l for l in self.aws("s3", "ls", "--recursive", f"s3://{b}").splitlines() if l.strip()]
            assert len(lines) == 501, f"{len(lines)} objects listed, expected 501"
            assert any(l.endswith(" big.bin") for l in lines), "big.bin not listed"
        with self.step("aws-cli", "s3 presign + curl"):
            url = self.aws("s3", "presign", f"s3://{b}/big.bin", "--expires-in", "300").strip()
            self.sh(["curl", "-fsS", "-o", self.path("big.curl"), url])
            self.same_file(big, self.path("big.curl"))
        with self.step("aws-cli", "s3api multipart by hand (create, upload-part x2, list-parts, complete)"):
            p1, p2 = self.path("part1"), self.path("part2")
            self.random_file(p1, 5 * MiB, "part1")
            self.random_file(p2, 3 * MiB + 17, "part2")
            up = json.loads(self.aws("s3api", "create-multipart-upload", "--bucket", b, "--key", "manual.bin"))
            uid = up["UploadId"]
            e1 = json.loads(self.aws("s3api", "upload-part", "--bucket", b, "--key", "manual.bin",
                                     "--part-number", "1", "--upload-id", uid, "--body", p1))["ETag"]
            e2 = json.loads(self.aws("s3api", "upload-part", "--bucket", b, "--key", "manual.bin",
                                     "--part-number", "2", "--upload-id", uid, "--body", p2))["ETag"]
            parts = json.loads(self.aws("s3api", "list-parts", "--bucket", b, "--key", "manual.bin", "--upload-id", uid))
            got = [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts["Parts"]]
            assert got == [(1, e1, 5 * MiB), (2, e2, 3 * MiB + 17)], got
            doc = json.dumps({"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
            self.aws("s3api", "complete-multipart-upload", "--bucket", b, "--key", "manual.bin",
                     "--upload-id", uid, "--multipart-upload", doc)
            self.aws("s3", "cp", f"s3://{b}/manual.bin", self.path("manual.down"))
            with open(self.path("manual.want"), "wb") as w:
                for p in (p1, p2):
                    with open(p, "rb") as r:
                        w.write(r.read())
            self.same_file(self.path("manual.want"), self.path("manual.down"))
        with self.step("aws-cli", "s3 rm --recursive"):
            self.aws("s3", "rm", "--recursive", f"s3://{b}")
            left = self.aws("s3", "ls", "--recursive", f"s3://{b}").strip()
            assert left == "", f"objects left: {left[:300]}"
        with self.step("aws-cli", f"s3 rb s3://{b}"):
            self.aws("s3", "rb", f"s3://{b}")
            out = self.aws("s3", "ls")
            assert b not in out, out

    def sse(self):
        """Server-side encryption: SSE-S3, SSE-C and the bucket default through aws-cli and boto3."""
        from botocore.exceptions import ClientError

        b = "sse-bucket"
        data = self.path("sse.bin")
        self.random_file(data, 20 * MiB + 5, "sse")
        key = self.path("sse-c.key")
        with open(key, "wb") as f:
            f.write(hashlib.sha256(b"sse-c key").digest())
        sse_c = ["--sse-c", "AES256", "--sse-c-key", f"fileb://{key}"]
        with self.step("aws-cli", f"s3 mb s3://{b}"):
            self.aws("s3", "mb", f"s3://{b}")
        with self.step("aws-cli", "s3 cp --sse AES256 (20 MiB, multipart) up, head, down + compare"):
            self.aws("s3", "cp", data, f"s3://{b}/s3.bin", "--sse", "AES256")
            head = json.loads(self.aws("s3api", "head-object", "--bucket", b, "--key", "s3.bin"))
            assert head.get("ServerSideEncryption") == "AES256", head
            self.aws("s3", "cp", f"s3://{b}/s3.bin", self.path("s3.down"))
            self.same_file(data, self.path("s3.down"))
        with self.step("aws-cli", "s3 cp --sse-c (20 MiB, multipart) up, down with the key + compare"):
            self.aws("s3", "cp", data, f"s3://{b}/c.bin", *sse_c)
            self.aws("s3", "cp", f"s3://{b}/c.bin", self.path("c.down"), *sse_c)
            self.same_file(data, self.path("c.down"))
        with self.step("aws-cli", "s3api get-object of an SSE-C object without its key: refused"):
            try:
                self.aws("s3api", "get-object", "--bucket", b, "--key", "c.bin", self.path("c.nokey"))
                refused = None
            except AssertionError as e:
                refused = str(e)
            assert refused is not None and "InvalidRequest" in refused, f"read without the key: {refused}"
        with self.step("aws-cli", "s3api put/get/delete-bucket-encryption, a default-encrypted put-object"):
            conf = json.dumps({"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
            self.aws("s3api", "put-bucket-encryption", "--bucket", b, "--server-side-encryption-configuration", conf)
            got = json.loads(self.aws("s3api", "get-bucket-encryption", "--bucket", b))
            rule = got["ServerSideEncryptionConfiguration"]["Rules"][0]
            assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", got
            small = self.path("default.txt")
            with open(small, "wb") as f:
                f.write(b"encrypted by the bucket default")
            out = json.loads(self.aws("s3api", "put-object", "--bucket", b, "--key", "default.txt", "--body", small))
            assert out.get("ServerSideEncryption") == "AES256", out
            self.aws("s3api", "delete-bucket-encryption", "--bucket", b)
        s3 = self.boto3_client()
        with self.step("boto3", "put_object/get_object with SSECustomerKey, a range, a wrong key"):
            ck = hashlib.sha256(b"boto3 key").digest()
            body = os.urandom(300 * 1024 + 7)
            s3.put_object(Bucket=b, Key="boto.bin", Body=body, SSECustomerAlgorithm="AES256", SSECustomerKey=ck)
            r = s3.get_object(Bucket=b, Key="boto.bin", SSECustomerAlgorithm="AES256", SSECustomerKey=ck,
                              Range="bytes=65000-140000")
            assert r["Body"].read() == body[65000:140001], "SSE-C range differs"
            try:
                s3.get_object(Bucket=b, Key="boto.bin", SSECustomerAlgorithm="AES256",
                              SSECustomerKey=hashlib.sha256(b"another").digest())
                code = None
            except ClientError as e:
                code = e.response["Error"]["Code"]
            assert code == "AccessDenied", f"a wrong key: {code}"
        with self.step("aws-cli", f"s3 rm --recursive, rb s3://{b}"):
            self.aws("s3", "rm", "--recursive", f"s3://{b}")
            self.aws("s3", "rb", f"s3://{b}")

    def boto3(self):
        from boto3.s3.transfer import TransferConfig

        s3 = self.boto3_client()
        b = "boto3-bucket"
        with self.step("boto3", "create_bucket"):
            s3.create_bucket(Bucket=b)
        src = self.path("boto.bin")
        self.random_file(src, 37 * MiB + 5, "boto")
        cfg = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4)
        with self.step("boto3", "upload_file (multipart TransferConfig)"):
            s3.upload_file(src, b, "boto.bin", Config=cfg)
            etag = s3.head_object(Bucket=b, Key="boto.bin")["ETag"]
            assert etag.strip('"').endswith("-5"), f"multipart ETag expected: {etag}"
        with self.step("boto3", "download_file + compare"):
            s3.download_file(b, "boto.bin", self.path("boto.down"), Config=cfg)
            self.same_file(src, self.path("boto.down"))
        keys = [f"many/{i:04}" for i in range(250)]
        with self.step("boto3", "put_object x250"):
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda k: s3.put_object(Bucket=b, Key=k, Body=k.encode()), keys))
        with self.step("boto3", "list_objects_v2 paginator (pages of 100)"):
            pages = list(s3.get_paginator("list_objects_v2").paginate(
                Bucket=b, Prefix="many/", PaginationConfig={"PageSize": 100}))
            listed = [o["Key"] for p in pages for o in p.get("Contents", [])]
            assert len(pages) == 3, f"{len(pages)} pages"
            assert listed == keys, f"{len(listed)} keys listed, expected 250 in order"
        with self.step("boto3", "copy_object"):
            s3.copy_object(Bucket=b, Key="copy.bin", CopySource={"Bucket": b, "Key": "boto.bin"})
            s3.download_file(b, "copy.bin", self.path("copy.down"))
            self.same_file(src, self.path("copy.down"))
        with self.step("boto3", "tags: put_object Tagging, TagCount, put/get/delete_object_tagging, bucket tagging"):
            s3.put_object(Bucket=b, Key="tagged.ts", Body=b"seg", Tagging="team=video&note=a%20b")
            assert s3.get_object(Bucket=b, Key="tagged.ts")["TagCount"] == 2
            got = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=b, Key="tagged.ts")["TagSet"]}
            assert got == {"team": "video", "note": "a b"}, got
            s3.put_object_tagging(Bucket=b, Key="tagged.ts", Tagging={"TagSet": [{"Key": "env", "Value": "prod"}]})
            assert s3.get_object_tagging(Bucket=b, Key="tagged.ts")["TagSet"] == [{"Key": "env", "Value": "prod"}]
            s3.delete_object_tagging(Bucket=b, Key="tagged.ts")
            assert s3.get_object_tagging(Bucket=b, Key="tagged.ts")["TagSet"] == []
            s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": [{"Key": "owner", "Value": "ops"}]})
            assert s3.get_bucket_tagging(Bucket=b)["TagSet"] == [{"Key": "owner", "Value": "ops"}]
            s3.delete_bucket_tagging(Bucket=b)
            s3.delete_object(Bucket=b, Key="tagged.ts")
        with self.step("boto3", "delete_objects (250 keys)"):
            r = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": False})
            assert len(r.get("Deleted", [])) == 250 and not r.get("Errors"), r.get("Errors")
            left = s3.list_objects_v2(Bucket=b, Prefix="many/").get("KeyCount")
            assert left == 0, f"{left} keys left"
        with self.step("boto3", "presigned PUT with plain HTTP"):
            url = s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "presigned.txt"}, ExpiresIn=300)
            body = b"uploaded through a presigned URL\n" * 1000
            # http.client adds no Content-Type (urllib would, and a SigV2
            # presigned URL signs the Content-Type: S3 would refuse it too).
            u = urllib.parse.urlsplit(url)
            conn = self.connection(u.netloc)
            conn.request("PUT", f"{u.path}?{u.query}", body=body)
            resp = conn.getresponse()
            answer = resp.read()
            assert resp.status == 200, f"{resp.status}: {answer[:300]}"
            conn.close()
            got = s3.get_object(Bucket=b, Key="presigned.txt")["Body"].read()
            assert got == body, "presigned upload differs"
        with self.step("curl", "chunked PUT without Content-Length to a presigned URL (curl -T -)"):
            url = s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "chunked.ts"}, ExpiresIn=300)
            seg = os.urandom(2 * MiB + 333)
            out = subprocess.run(["curl", "-sS", "-f", "-T", "-", url], input=seg, capture_output=True, timeout=120)
            assert out.returncode == 0, out.stderr.decode(errors="replace")
            got = s3.get_object(Bucket=b, Key="chunked.ts")["Body"].read()
            assert got == seg, "chunked upload differs"
        with self.step("curl", "a public-read bucket policy: anonymous GET, HEAD and range; no PUT, LIST or DELETE"):
            pub = "boto3-public"
            s3.create_bucket(Bucket=pub)
            seg = os.urandom(700_001)
            s3.put_object(Bucket=pub, Key="live/seg1.ts", Body=seg)
            base = f"{self.endpoint}/{pub}"

            def curl(*args, data=None):
                out = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
                                     input=data, capture_output=True, timeout=60)
                body, _, code = out.stdout.rpartition(b"\n")
                return int(code), body

            assert curl(f"{base}/live/seg1.ts")[0] == 403, "anonymous GET before the policy"
            s3.put_bucket_policy(Bucket=pub, Policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
                               "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{pub}/*"}]}))
            assert s3.get_bucket_policy_status(Bucket=pub)["PolicyStatus"]["IsPublic"] is True
            code, body = curl(f"{base}/live/seg1.ts")
            assert code == 200 and body == seg, f"anonymous GET: {code}"
            code, body = curl("-r", "1000-1999", f"{base}/live/seg1.ts")
            assert code == 206 and body == seg[1000:2000], f"anonymous range GET: {code}"
            assert curl("-I", f"{base}/live/seg1.ts")[0] == 200, "anonymous HEAD"
            assert curl("-T", "-", f"{base}/live/evil.ts", data=b"evil")[0] == 403, "anonymous PUT"
            assert curl(f"{base}?list-type=2")[0] == 403, "anonymous LIST"
            assert curl("-X", "DELETE", f"{base}/live/seg1.ts")[0] == 403, "anonymous DELETE"
            s3.delete_bucket_policy(Bucket=pub)
            assert curl(f"{base}/live/seg1.ts")[0] == 403, "anonymous GET after the policy is gone"
            s3.delete_object(Bucket=pub, Key="live/seg1.ts")
            s3.delete_bucket(Bucket=pub)
        with self.step("boto3", "generate_presigned_post: a browser-form upload within its policy, one outside it refused"):
            import urllib3
            seg = os.urandom(40_000)
            post = s3.generate_presigned_post(
                b, "forms/${filename}",
                Fields={"success_action_status": "201", "Content-Type": "video/mp2t"},
                Conditions=[["starts-with", "$key", "forms/"], ["content-length-range", 1, 100_000],
                            {"success_action_status": "201"}, ["starts-with", "$Content-Type", "video/"]],
                ExpiresIn=300)
            r = urllib3.request("POST", post["url"], fields={**post["fields"], "file": ("seg.ts", seg)})
            assert r.status == 201, f"form upload: {r.status} {r.data[:300]!r}"
            assert b"<Key>forms/seg.ts</Key>" in r.data, r.data
            assert s3.get_object(Bucket=b, Key="forms/seg.ts")["Body"].read() == seg
            r = urllib3.request("POST", post["url"], fields={**post["fields"], "file": ("big.ts", seg * 3)})
            assert r.status == 400 and b"EntityTooLarge" in r.data, f"oversized form upload: {r.status} {r.data[:300]!r}"
            fields = {**post["fields"], "key": "elsewhere/seg.ts"}
            r = urllib3.request("POST", post["url"], fields={**fields, "file": ("seg.ts", seg)})
            assert r.status == 403 and b"AccessDenied" in r.data, f"form upload outside its policy: {r.status}"
            s3.delete_object(Bucket=b, Key="forms/seg.ts")
        with self.step("boto3", "delete bucket"):
            for k in ("boto.bin", "copy.bin", "presigned.txt", "chunked.ts"):
                s3.delete_object(Bucket=b, Key=k)
            s3.delete_bucket(Bucket=b)
        self.boto3_sigv2()

    def boto3_sigv2(self):
        """Legacy clients: Signature Version 2 (botocore's `s3` signer)."""
        import boto3
        import botocore.exceptions
        from botocore.config import Config

        def client(secret):
            return boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=self.args.access_key,
                aws_secret_access_key=secret,
                region_name="us-east-1",
                verify=self.args.ca_bundle,
                config=Config(signature_version="s3", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
            )

        s3 = client(self.args.secret_key)
        b = "sigv2-bucket"
        body = os.urandom(3 * MiB + 17)
        with self.step("boto3 SigV2", "create bucket, put, get, list, multipart"):
            s3.create_bucket(Bucket=b)
            s3.put_object(Bucket=b, Key="dir/a b+c.bin", Body=body)
            got = s3.get_object(Bucket=b, Key="dir/a b+c.bin")["Body"].read()
            assert got == body, "SigV2 GET differs"
            keys = [o["Key"] for o in s3.list_objects(Bucket=b)["Contents"]]
            assert keys == ["dir/a b+c.bin"], keys
            up = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
            first = os.urandom(5 * MiB)
            etags = [s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=n, Body=data)["ETag"]
                     for n, data in ((1, first), (2, body))]
            s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up, MultipartUpload={
                "Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]})
            assert s3.get_object(Bucket=b, Key="mp")["Body"].read() == first + body
        with self.step("boto3 SigV2", "presigned GET"):
            url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "dir/a b+c.bin"}, ExpiresIn=60)
            assert "Signature=" in url and "X-Amz-Signature" not in url, url
            with urllib.request.urlopen(url, timeout=60) as r:
                assert r.read() == body, "SigV2 presigned GET differs"
        with self.step("boto3 SigV2", "wrong secret and skewed date refused"):
            try:
                client("not-the-secret").list_objects(Bucket=b)
                raise AssertionError("a wrong SigV2 signature was accepted")
            except botocore.exceptions.ClientError as e:
                assert e.response["Error"]["Code"] == "SignatureDoesNotMatch", e.response["Error"]
            u = urllib.parse.urlsplit(self.endpoint)
            conn = self.connection(u.netloc)
            old = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() - 3600))
            conn.request("GET", f"/{b}/", headers={"Date": old, "Authorization": f"AWS {self.args.access_key}:AAAA"})
            resp = conn.getresponse()
            answer = resp.read()
            assert resp.status == 403 and b"<Code>RequestTimeTooSkewed</Code>" in answer, (resp.status, answer[:300])
            conn.close()
        with self.step("boto3 SigV2", "delete objects and bucket"):
            for k in ("dir/a b+c.bin", "mp"):
                s3.delete_object(Bucket=b, Key=k)
            s3.delete_bucket(Bucket=b)

    def versioning(self):
        """A versioned bucket: rclone backs a tree up twice and restores the
        first backup byte-identical (`--s3-version-at`, ListObjectVersions
        and GETs by version id); boto3 and aws-cli read, delete and list
        versions and markers."""
        b = "versions-bucket"
        s3 = self.boto3_client()
        with self.step("aws-cli", "s3api put-bucket-versioning Enabled, get-bucket-versioning"):
            self.aws("s3", "mb", f"s3://{b}")
            self.aws("s3api", "put-bucket-versioning", "--bucket", b,
                     "--versioning-configuration", "Status=Enabled")
            got = json.loads(self.aws("s3api", "get-bucket-versioning", "--bucket", b))
            assert got.get("Status") == "Enabled", got
        rc = self.rclone_env()
        src = self.path("backup-src")
        self.small_files(src, 40, prefix="v")
        self.random_file(os.path.join(src, "large.bin"), 12 * MiB, "backup-large")
        first = self.tree(src)
        with self.step("rclone", "backup 1 (copy into the versioned bucket)"):
            self.sh([rc, "copy", src, f"ts:{b}/backup"])
        time.sleep(2)
        between = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        time.sleep(2)
        os.remove(os.path.join(src, "d0", "v0000.txt"))
        self.random_file(os.path.join(src, "large.bin"), 12 * MiB, "backup-large-changed")
        with open(os.path.join(src, "d1", "v0001.txt"), "w") as f:
            f.write("changed after backup 1\n")
        with self.step("rclone", "backup 2 (sync: one file changed, one overwritten, one removed)"):
            self.sh([rc, "sync", src, f"ts:{b}/backup"])
            self.sh([rc, "check", src, f"ts:{b}/backup"])
        with self.step("rclone", "restore backup 1 (--s3-version-at) byte-identical"):
            dst = self.path("restored-1")
            self.sh([rc, "copy", "--s3-version-at", between, f"ts:{b}/backup", dst])
            assert self.tree(dst) == first, "the restored backup differs from the first tree"
        with self.step("rclone", "restore backup 2 (latest) byte-identical"):
            dst = self.path("restored-2")
            self.sh([rc, "copy", f"ts:{b}/backup", dst])
            assert self.tree(dst) == self.tree(src), "the restored backup differs from the second tree"
        with self.step("boto3", "versions: delete marker, get by version id, delete the marker by id"):
            k = "backup/d1/v0001.txt"
            versions = s3.list_object_versions(Bucket=b, Prefix=k)["Versions"]
            assert len(versions) == 2, versions
            old = [v for v in versions if not v["IsLatest"]][0]
            r = s3.delete_object(Bucket=b, Key=k)
            assert r["DeleteMarker"] is True, r
            try:
                s3.get_object(Bucket=b, Key=k)
                raise AssertionError("GET of a deleted key answered")
            except s3.exceptions.NoSuchKey:
                pass
            body = s3.get_object(Bucket=b, Key=k, VersionId=old["VersionId"])["Body"].read()
            assert body.decode().startswith("file 1 "), body[:40]
            s3.delete_object(Bucket=b, Key=k, VersionId=r["VersionId"])
            assert s3.get_object(Bucket=b, Key=k)["Body"].read() == b"changed after backup 1\n"
        with self.step("aws-cli", "s3api list-object-versions, then every version deleted and rb"):
            listed = json.loads(self.aws("s3api", "list-object-versions", "--bucket", b))
            versions = listed.get("Versions", []) + listed.get("DeleteMarkers", [])
            # 41 files backed up, 2 changed, 1 removed (a marker).
            assert len(versions) == 41 + 2 + 1, f"{len(versions)} versions and markers"
            pages = s3.get_paginator("list_object_versions").paginate(Bucket=b, PaginationConfig={"PageSize": 7})
            paged = [(v["Key"], v["VersionId"]) for p in pages for v in p.get("Versions", []) + p.get("DeleteMarkers", [])]
            assert sorted(paged) == sorted((v["Key"], v["VersionId"]) for v in versions), "paged listing differs"
            ids = [{"Key": k, "VersionId": v} for k, v in paged]
            r = s3.delete_objects(Bucket=b, Delete={"Objects": ids})
            assert len(r.get("Deleted", [])) == len(ids) and not r.get("Errors"), r.get("Errors")
            self.aws("s3", "rb", f"s3://{b}")

    def rclone_env(self):
        """Configures the `ts` rclone remote (environment) and returns the binary."""
        remote = "ts"
        env = {
            f"RCLONE_CONFIG_{remote.upper()}_TYPE": "s3",
            f"RCLONE_CONFIG_{remote.upper()}_PROVIDER": "Other",
            f"RCLONE_CONFIG_{remote.upper()}_ACCESS_KEY_ID": self.args.access_key,
            f"RCLONE_CONFIG_{remote.upper()}_SECRET_ACCESS_KEY": self.args.secret_key,
            f"RCLONE_CONFIG_{remote.upper()}_ENDPOINT": self.endpoint,
            f"RCLONE_CONFIG_{remote.upper()}_REGION": "us-east-1",
            f"RCLONE_CONFIG_{remote.upper()}_FORCE_PATH_STYLE": "true",
            "RCLONE_CONFIG": self.path("rclone.conf"),
        }
        self.env.update(env)
        return os.path.join(self.bin, "rclone")

    def rclone(self):
        rc = self.rclone_env()
        b = "ts:rclone-bucket"
        src = self.path("rclone-src")
        self.small_files(src, 60, prefix="r")
        self.random_file(os.path.join(src, "large.bin"), 20 * MiB, "rclone-large")
        with self.step("rclone", "mkdir"):
            self.sh([rc, "mkdir", b])
        with self.step("rclone", "copy"):
            self.sh([rc, "copy", src, f"{b}/data"])
        with self.step("rclone", "check (after copy)"):
            self.sh([rc, "check", src, f"{b}/data"])
        os.remove(os.path.join(src, "d0", "r0000.txt"))
        with open(os.path.join(src, "d1", "new.txt"), "w") as f:
            f.write("added before sync\n")
        with self.step("rclone", "sync (one file removed, one added)"):
            self.sh([rc, "sync", src, f"{b}/data"])
        with self.step("rclone", "check (after sync)"):
            self.sh([rc, "check", src, f"{b}/data"])
        with self.step("rclone", "lsf -R"):
            listed = sorted(l for l in self.sh([rc, "lsf", "-R", "--files-only", f"{b}/data"]).splitlines() if l)
            want = sorted(self.tree(src).keys())
            assert listed == want, f"lsf listed {len(listed)} files, expected {len(want)}"
        with self.step("rclone", "purge"):
            self.sh([rc, "purge", b])

    def s3cmd(self):
        conf = self.path("s3cmd.cfg")
        with open(conf, "w") as f:
            f.write(
                "[default]\n"
                f"access_key = {self.args.access_key}\n"
                f"secret_key = {self.args.secret_key}\n"
                f"host_base = {self.hostport}\n"
                f"host_bucket = {self.hostport}\n"
                "use_https = False\n"
                "signature_v2 = False\n"
                "bucket_location = us-east-1\n"
            )
        s3c = [os.path.join(self.bin, "s3cmd"), "-c", conf]
        b = "s3://s3cmd-bucket"
        src = self.path("s3cmd.bin")
        self.random_file(src, 6 * MiB + 3, "s3cmd")
        with self.step("s3cmd", "mb"):
            self.sh([*s3c, "mb", b])
        with self.step("s3cmd", "put"):
            self.sh([*s3c, "put", src, f"{b}/s3cmd.bin"])
        with self.step("s3cmd", "get + compare"):
            self.sh([*s3c, "get", "--force", f"{b}/s3cmd.bin", self.path("s3cmd.down")])
            self.same_file(src, self.path("s3cmd.down"))
        with self.step("s3cmd", "ls"):
            out = self.sh([*s3c, "ls", f"{b}/"])
            assert "s3cmd.bin" in out and str(6 * MiB + 3) in out, out
        with self.step("s3cmd", "put -P (public-read ACL): anonymous curl GET; setacl --acl-private takes it back"):
            seg = self.path("s3cmd-seg.ts")
            self.random_file(seg, 300_007, "s3cmd-seg")
            self.sh([*s3c, "put", "-P", seg, f"{b}/live/seg.ts"])
            url = f"{self.endpoint}/s3cmd-bucket/live/seg.ts"
            down = self.path("s3cmd-seg.down")
            out = subprocess.run(["curl", "-sS", "-o", down, "-w", "%{http_code}", url],
                                 capture_output=True, timeout=60)
            assert out.stdout == b"200", f"anonymous GET of a public-read object: {out.stdout!r}"
            self.same_file(seg, down)
            self.sh([*s3c, "setacl", "--acl-private", f"{b}/live/seg.ts"])
            out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url],
                                 capture_output=True, timeout=60)
            assert out.stdout == b"403", f"anonymous GET after --acl-private: {out.stdout!r}"
            self.sh([*s3c, "del", f"{b}/live/seg.ts"])
        with self.step("s3cmd", "del"):
            self.sh([*s3c, "del", f"{b}/s3cmd.bin"])
            out = self.sh([*s3c, "ls", f"{b}/"])
            assert "s3cmd.bin" not in out, out
        with self.step("s3cmd", "rb"):
            self.sh([*s3c, "rb", b])

    def minio(self):
        from minio import Minio
        from minio.deleteobjects import DeleteObject

        mc = Minio(self.hostport, access_key=self.args.access_key, secret_key=self.args.secret_key,
                   secure=False, region="us-east-1")
        b = "minio-bucket"
        src = self.path("minio.bin")
        self.random_file(src, 12 * MiB + 1, "minio")
        with self.step("minio-py", "make_bucket"):
            mc.make_bucket(b)
            assert mc.bucket_exists(b)
        with self.step("minio-py", "fput_object (multipart, 5 MiB parts)"):
            mc.fput_object(b, "dir/minio.bin", src, part_size=5 * MiB)
        with self.step("minio-py", "fget_object + compare"):
            mc.fget_object(b, "dir/minio.bin", self.path("minio.down"))
            self.same_file(src, self.path("minio.down"))
        with self.step("minio-py", "stat_object"):
            st = mc.stat_object(b, "dir/minio.bin")
            assert st.size == 12 * MiB + 1, st.size
        with self.step("minio-py", "list_objects"):
            names = [o.object_name for o in mc.list_objects(b, prefix="dir/", recursive=True)]
            assert names == ["dir/minio.bin"], names
        with self.step("minio-py", "remove_objects + remove_bucket"):
            errors = list(mc.remove_objects(b, [DeleteObject("dir/minio.bin")]))
            assert not errors, errors
            mc.remove_bucket(b)


def admin_suite(run):
    """`tessera admin` with aws-cli: a read-only key made from the command
    line cannot PUT; a bucket quota refuses an upload that would pass it."""
    if not run.args.tessera:
        raise StepFailed(f"FAIL [{run.args.label}] admin: --tessera BIN is needed for this suite")
    label = "".join(c for c in run.args.label.lower() if c.isalnum())
    bucket = f"admin-{label}"
    policy_name = f"readonly-{label}"

    def admin(*argv):
        return run.sh([run.args.tessera, "admin", "--endpoint", run.endpoint, "--admin-access-key",
                       run.args.access_key, "--admin-secret-key", run.args.secret_key, *argv])

    doc = run.path("readonly.json")
    with open(doc, "w") as f:
        json.dump({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "s3:GetObject", "s3:ListBucket", "s3:ListAllMyBuckets"], "Resource": "*"}]}, f)
    one = run.path("one.bin")
    run.random_file(one, MiB, "admin-one")
    big = run.path("big.bin")
    run.random_file(big, 4 * MiB, "admin-big")
    with run.step("admin", "policy put + key create --policy (read-only)"):
        admin("policy", "put", policy_name, doc)
        made = json.loads(admin("--json", "key", "create", "--policy", policy_name, "--description", "clients"))
        ro_key, ro_secret = made["access_key"], made["secret_key"]
    run.aws("s3", "mb", f"s3://{bucket}")
    run.aws("s3", "cp", one, f"s3://{bucket}/one.bin")
    saved = dict(run.env)
    run.env.update(AWS_ACCESS_KEY_ID=ro_key, AWS_SECRET_ACCESS_KEY=ro_secret)
    try:
        with run.step("aws-cli", "read-only key: s3 ls and cp down work, cp up is AccessDenied"):
            assert "one.bin" in run.aws("s3", "ls", f"s3://{bucket}/")
            run.aws("s3", "cp", f"s3://{bucket}/one.bin", run.path("back.bin"))
            run.same_file(one, run.path("back.bin"))
            try:
                run.aws("s3", "cp", one, f"s3://{bucket}/denied.bin")
                raise AssertionError("a read-only key wrote an object")
            except AssertionError as e:
                assert "AccessDenied" in str(e), e
    finally:
        run.env = saved
    with run.step("admin + aws-cli", "bucket quota 3MiB: a 4 MiB upload is QuotaExceeded, 1 MiB fits"):
        admin("bucket", "quota", bucket, "3MiB")
        try:
            run.aws("s3", "cp", big, f"s3://{bucket}/big.bin")
            raise AssertionError("an upload past the quota was stored")
        except AssertionError as e:
            assert "QuotaExceeded" in str(e), e
        run.aws("s3", "cp", one, f"s3://{bucket}/two.bin")
        info = json.loads(admin("--json", "bucket", "info", bucket))
        assert info["usage"]["objects"] == 2 and info["quota_bytes"] == 3 * MiB, info
    admin("key", "delete", ro_key)
    admin("policy", "delete", policy_name)
    admin("bucket", "quota", bucket, "0")
    run.aws("s3", "rm", "--recursive", f"s3://{bucket}/")
    run.aws("s3", "rb", f"s3://{bucket}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret-key", required=True)
    ap.add_argument("--label", default="tessera")
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", help="comma-separated subset: aws,boto3,sse,versioning,rclone,s3cmd,minio,admin")
    ap.add_argument("--ca-bundle", help="PEM file of the CA to trust for an https:// endpoint")
    ap.add_argument("--tessera", help="the tessera binary (for the admin suite)")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    run = Run(args)
    suites = {
        "aws": run.aws_cli,
        "boto3": run.boto3,
        "sse": run.sse,
        "versioning": run.versioning,
        "rclone": run.rclone,
        "s3cmd": run.s3cmd,
        "minio": run.minio,
        "admin": lambda: admin_suite(run),
    }
    chosen = args.only.split(",") if args.only else list(suites)
    start = time.monotonic()
    try:
        for name in chosen:
            suites[name]()
    except StepFailed as e:
        print(e, file=sys.stderr, flush=True)
        return 1
    finally:
        shutil.rmtree(args.work, ignore_errors=True)
    print(f"[{args.label}] {run.steps} client steps passed in {time.monotonic() - start:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
