"""Additional checksums: CRC32, CRC32C, CRC64NVME, SHA1, SHA256 as x-amz-checksum-* header and as
aws-chunked trailer; GetObject/HeadObject with ChecksumMode; multipart COMPOSITE and FULL_OBJECT
checksums; mismatches; signed aws-chunked uploads."""

import base64

import pytest

from conflib import (ALGORITHMS, MIB, blob, checksum_b64, checksum_raw, expect_raw, get_body, key_path, md5_b64,
                     ops, put, s3_error)

DATA = b"The quick brown fox jumps over the lazy dog" * 50
NAME = {"crc32": "CRC32", "crc32c": "CRC32C", "crc64nvme": "CRC64NVME", "sha1": "SHA1", "sha256": "SHA256"}


def field(alg: str) -> str:
    return "Checksum" + NAME[alg]


def head_checksum(s3, bucket, key, alg):
    h = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    return h.get(field(alg)), h


@ops("PutObject", "HeadObject", "GetObject")
@pytest.mark.parametrize("alg", ALGORITHMS)
def test_header_checksum_stored(raw, s3, bucket, alg):
    value = checksum_b64(alg, DATA)
    r = raw.put(key_path(bucket, "k"), body=DATA, headers={f"x-amz-checksum-{alg}": value})
    expect_raw(r, 200)
    assert r.header(f"x-amz-checksum-{alg}") == value
    got, _ = head_checksum(s3, bucket, "k", alg)
    assert got == value
    g = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert g[field(alg)] == value and g["Body"].read() == DATA


@ops("PutObject")
@pytest.mark.parametrize("alg", ALGORITHMS)
def test_header_checksum_mismatch(raw, s3, bucket, alg):
    r = raw.put(key_path(bucket, "k"), body=DATA, headers={f"x-amz-checksum-{alg}": checksum_b64(alg, b"other")})
    expect_raw(r, 400, "BadDigest")
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="k")


@ops("PutObject", "HeadObject")
@pytest.mark.parametrize("alg", ALGORITHMS)
def test_trailer_checksum_stored(raw, s3, bucket, alg):
    r = raw.put_trailer(key_path(bucket, "k"), DATA, alg, chunk=1000)
    expect_raw(r, 200)
    assert get_body(s3, bucket, "k") == DATA
    assert head_checksum(s3, bucket, "k", alg)[0] == checksum_b64(alg, DATA)


@ops("PutObject")
@pytest.mark.parametrize("alg", ALGORITHMS)
def test_trailer_checksum_mismatch(raw, s3, bucket, alg):
    r = raw.put_trailer(key_path(bucket, "k"), DATA, alg, value=checksum_b64(alg, b"other"), chunk=1000)
    expect_raw(r, 400, "BadDigest")
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="k")


@ops("PutObject")
def test_trailer_with_http_chunked_transfer(raw, s3, bucket):
    r = raw.put_trailer(key_path(bucket, "k"), DATA, "crc32", http_chunked=True, chunk=500)
    expect_raw(r, 200)
    assert get_body(s3, bucket, "k") == DATA


@ops("PutObject")
def test_trailer_empty_body(raw, s3, bucket):
    r = raw.put_trailer(key_path(bucket, "k"), b"", "crc32")
    expect_raw(r, 200)
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == 0


@ops("PutObject")
def test_trailer_declared_but_missing(raw, s3, bucket):
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(DATA), DATA)
    headers = {"Content-Encoding": "aws-chunked", "X-Amz-Trailer": "x-amz-checksum-crc32",
               "X-Amz-Decoded-Content-Length": str(len(DATA)), "Content-Length": str(len(body))}
    target, hdrs, _ = raw.sign("PUT", key_path(bucket, "k"), headers=headers,
                               payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    r = raw.send("PUT", target, hdrs, body)
    expect_raw(r, 400)
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="k")


@ops("PutObject")
def test_signed_chunked_upload(raw, s3, bucket):
    data = blob(200_000, seed=5)
    expect_raw(raw.put_signed_chunks(key_path(bucket, "k"), data, chunk=65536), 200)
    assert get_body(s3, bucket, "k") == data


@ops("PutObject")
def test_signed_chunked_bad_chunk_signature(raw, s3, bucket):
    # Small enough that the whole body is sent before the server answers (and may close).
    data = blob(24_000, seed=6)
    r = raw.put_signed_chunks(key_path(bucket, "k"), data, chunk=8192, corrupt_chunk=2)
    expect_raw(r, 403, "SignatureDoesNotMatch")
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="k")


@ops("PutObject")
def test_checksum_invalid_base64(raw, bucket):
    r = raw.put(key_path(bucket, "k"), body=DATA, headers={"x-amz-checksum-crc32": "!!notbase64"})
    expect_raw(r, 400, "InvalidRequest")


@ops("PutObject")
def test_checksum_wrong_length(raw, bucket):
    r = raw.put(key_path(bucket, "k"), body=DATA,
                headers={"x-amz-checksum-sha256": base64.b64encode(b"short").decode()})
    expect_raw(r, 400, "InvalidRequest")


@ops("PutObject")
def test_multiple_checksum_headers_refused(raw, bucket):
    r = raw.put(key_path(bucket, "k"), body=DATA, headers={
        "x-amz-checksum-crc32": checksum_b64("crc32", DATA), "x-amz-checksum-sha1": checksum_b64("sha1", DATA)})
    expect_raw(r, 400, "InvalidRequest")


@ops("PutObject")
def test_checksum_and_content_md5(raw, s3, bucket):
    r = raw.put(key_path(bucket, "k"), body=DATA, headers={
        "x-amz-checksum-sha256": checksum_b64("sha256", DATA), "Content-MD5": md5_b64(DATA)})
    expect_raw(r, 200)


@ops("GetObject")
def test_checksum_not_returned_without_mode(raw, bucket):
    raw.put(key_path(bucket, "k"), body=DATA, headers={"x-amz-checksum-sha1": checksum_b64("sha1", DATA)})
    r = raw.get(key_path(bucket, "k"))
    assert r.header("x-amz-checksum-sha1") is None


@ops("GetObject")
def test_checksum_not_returned_for_range(raw, bucket):
    raw.put(key_path(bucket, "k"), body=DATA, headers={"x-amz-checksum-sha1": checksum_b64("sha1", DATA)})
    r = raw.get(key_path(bucket, "k"), headers={"Range": "bytes=0-9", "x-amz-checksum-mode": "ENABLED"})
    expect_raw(r, 206)
    assert r.header("x-amz-checksum-sha1") is None


@ops("HeadObject")
def test_checksum_type_full_object_for_put(raw, s3, bucket):
    raw.put(key_path(bucket, "k"), body=DATA, headers={"x-amz-checksum-crc32c": checksum_b64("crc32c", DATA)})
    _, h = head_checksum(s3, bucket, "k", "crc32c")
    assert h.get("ChecksumType") == "FULL_OBJECT"


@ops("PutObject", "HeadObject")
@pytest.mark.parametrize("alg", ["crc32", "sha1", "sha256"])
def test_boto3_checksum_algorithm(s3, bucket, alg):
    # Over TLS botocore sends this as an aws-chunked trailer; over HTTP as a header.
    r = s3.put_object(Bucket=bucket, Key="k", Body=DATA, ChecksumAlgorithm=NAME[alg])
    assert r[field(alg)] == checksum_b64(alg, DATA)
    assert head_checksum(s3, bucket, "k", alg)[0] == checksum_b64(alg, DATA)


@ops("PutObject", "HeadObject")
@pytest.mark.parametrize("alg", ["crc32c", "crc64nvme"])
def test_boto3_precomputed_checksum(s3, bucket, alg):
    value = checksum_b64(alg, DATA)
    s3.put_object(Bucket=bucket, Key="k", Body=DATA, **{field(alg): value})
    assert head_checksum(s3, bucket, "k", alg)[0] == value


@ops("CopyObject", "HeadObject")
def test_copy_with_checksum_algorithm(s3, bucket):
    put(s3, bucket, "src", DATA)
    r = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                       ChecksumAlgorithm="SHA256")
    assert r["CopyObjectResult"]["ChecksumSHA256"] == checksum_b64("sha256", DATA)
    assert head_checksum(s3, bucket, "dst", "sha256")[0] == checksum_b64("sha256", DATA)


# --- multipart --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def parts():
    return [blob(5 * MIB, seed=21), blob(3000, seed=22)]


def _mpu(s3, bucket, alg, parts, checksum_type=None):
    kw = {"ChecksumAlgorithm": NAME[alg]}
    if checksum_type:
        kw["ChecksumType"] = checksum_type
    cr = s3.create_multipart_upload(Bucket=bucket, Key="mp", **kw)
    uid = cr["UploadId"]
    done = []
    for n, data in enumerate(parts, 1):
        v = checksum_b64(alg, data)
        r = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=n, Body=data, **{field(alg): v})
        assert r[field(alg)] == v
        done.append({"PartNumber": n, "ETag": r["ETag"], field(alg): v})
    return cr, uid, done


@ops("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "HeadObject")
@pytest.mark.parametrize("alg", ["crc32", "crc32c", "sha1", "sha256"])
def test_multipart_composite(s3, bucket, parts, alg):
    cr, uid, done = _mpu(s3, bucket, alg, parts, "COMPOSITE")
    assert cr.get("ChecksumAlgorithm") == NAME[alg]
    r = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": done})
    composite = checksum_b64(alg, b"".join(checksum_raw(alg, p) for p in parts)) + f"-{len(parts)}"
    assert r[field(alg)] == composite
    got, h = head_checksum(s3, bucket, "mp", alg)
    assert got == composite
    assert h.get("ChecksumType") == "COMPOSITE"


@ops("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "HeadObject")
@pytest.mark.parametrize("alg", ["crc32", "crc32c", "crc64nvme"])
def test_multipart_full_object(s3, bucket, parts, alg):
    _, uid, done = _mpu(s3, bucket, alg, parts, "FULL_OBJECT")
    r = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": done})
    whole = checksum_b64(alg, b"".join(parts))
    assert r[field(alg)] == whole
    got, h = head_checksum(s3, bucket, "mp", alg)
    assert got == whole
    assert h.get("ChecksumType") == "FULL_OBJECT"


@ops("CreateMultipartUpload")
@pytest.mark.parametrize("alg", ["sha1", "sha256"])
def test_multipart_full_object_refused_for_sha(s3, bucket, alg):
    with s3_error(400, "InvalidRequest"):
        s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm=NAME[alg], ChecksumType="FULL_OBJECT")


@ops("UploadPart", "ListParts")
def test_multipart_part_checksum_mismatch(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")["UploadId"]
    with s3_error(400, "BadDigest"):
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"data",
                       ChecksumSHA256=checksum_b64("sha256", b"other"))
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid).get("Parts", []) == []


@ops("ListParts")
def test_list_parts_reports_part_checksums(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA1")["UploadId"]
    v = checksum_b64("sha1", b"part one")
    s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"part one", ChecksumSHA1=v)
    r = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)
    assert r["Parts"][0]["ChecksumSHA1"] == v


@ops("CompleteMultipartUpload")
def test_multipart_complete_wrong_part_checksum(s3, bucket, parts):
    _, uid, done = _mpu(s3, bucket, "sha256", [b"only part"])
    done[0]["ChecksumSHA256"] = checksum_b64("sha256", b"not the part")
    with s3_error(400, "InvalidPart"):
        s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": done})
