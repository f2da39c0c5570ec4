"""Multipart completion without a copy: parts of the upload's slot size are written at their
offsets into the upload's data file, and completion publishes that file (the object is the same
inode). Every layout the in-place path cannot take (irregular parts, a subset, a slot whose
writer did not finish, a failed completion's retry) must still give the right bytes, through
the copying path. Checked from the file system: the data file, the records, the inodes."""

import base64
import os
import socket
import threading
import zlib

from helpers import MIB, error_of, key_path, multipart_etag

PART = 5 * MIB


def start(s3, bucket, key="obj", **kw):
    return s3.create_multipart_upload(Bucket=bucket, Key=key, **kw)["UploadId"]


def put_part(s3, bucket, key, uid, n, data, **kw):
    r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=data, **kw)
    return {"PartNumber": n, "ETag": r["ETag"], **({k: r[k] for k in r if k.startswith("Checksum")})}


def complete(s3, bucket, key, uid, parts, **kw):
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                        MultipartUpload={"Parts": parts}, **kw)


def upload_dir(bucket_dir, uid):
    return bucket_dir / ".strait-uploads" / uid


def data_inode(bucket_dir, uid):
    return os.stat(upload_dir(bucket_dir, uid) / "data").st_ino


def blobs(n_full=2, tail=1234):
    return [os.urandom(PART) for _ in range(n_full)] + [os.urandom(tail)]


def test_equal_parts_are_written_in_place_and_published_without_copy(s3, bucket, bucket_dir):
    b = blobs()
    uid = start(s3, bucket, key="d/e/obj")
    parts = [put_part(s3, bucket, "d/e/obj", uid, n, data) for n, data in enumerate(b, 1)]
    d = upload_dir(bucket_dir, uid)
    # The records are empty files; the bytes sit at (n - 1) x slot in the data file.
    for n in (1, 2, 3):
        assert os.stat(d / f"{n:05}").st_size == 0
        assert (d / f"{n:05}.slot").is_file() and (d / f"{n:05}.done").is_file()
    assert (d / "slot").read_text() == str(PART)
    raw = (d / "data").read_bytes()
    assert raw[:PART] == b[0] and raw[PART:2 * PART] == b[1] and raw[2 * PART:2 * PART + 1234] == b[2]
    ino = data_inode(bucket_dir, uid)
    # ListParts reports each part's own size.
    sizes = [p["Size"] for p in s3.list_parts(Bucket=bucket, Key="d/e/obj", UploadId=uid)["Parts"]]
    assert sizes == [PART, PART, 1234]
    done = complete(s3, bucket, "d/e/obj", uid, parts)
    assert done["ETag"] == multipart_etag(b)
    path = bucket_dir / "d" / "e" / "obj"
    assert os.stat(path).st_ino == ino, "the object is the upload's data file"
    assert os.stat(path).st_nlink == 1, "the upload's own name is gone"
    assert path.read_bytes() == b"".join(b)
    assert s3.get_object(Bucket=bucket, Key="d/e/obj")["Body"].read() == b"".join(b)
    assert not upload_dir(bucket_dir, uid).exists()
    # Nothing of the upload is left in the target directory.
    assert sorted(os.listdir(bucket_dir / "d" / "e")) == ["obj"]


def test_parts_arriving_out_of_order_and_at_once_go_in_place(s3, bucket, bucket_dir):
    b = blobs(n_full=5, tail=4096)
    uid = start(s3, bucket)
    first = put_part(s3, bucket, "obj", uid, 3, b[2])  # sets the slot size: an ordinary part
    results = {3: first}

    def send(n):
        results[n] = put_part(s3, bucket, "obj", uid, n, b[n - 1])

    threads = [threading.Thread(target=send, args=(n,)) for n in (6, 1, 5, 2, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ino = data_inode(bucket_dir, uid)
    complete(s3, bucket, "obj", uid, [results[n] for n in range(1, 7)])
    assert os.stat(bucket_dir / "obj").st_ino == ino
    assert (bucket_dir / "obj").read_bytes() == b"".join(b)


def test_last_part_first_falls_back_to_a_copy(s3, bucket, bucket_dir):
    b = blobs()
    uid = start(s3, bucket)
    # The small last part arrives first and sets the slot size: the full parts do not fit it.
    last = put_part(s3, bucket, "obj", uid, 3, b[2])
    parts = [put_part(s3, bucket, "obj", uid, n, b[n - 1]) for n in (1, 2)] + [last]
    d = upload_dir(bucket_dir, uid)
    assert os.stat(d / "00001").st_size == PART, "a part larger than the slot is its own file"
    ino = data_inode(bucket_dir, uid)
    complete(s3, bucket, "obj", uid, parts)
    assert os.stat(bucket_dir / "obj").st_ino != ino
    assert (bucket_dir / "obj").read_bytes() == b"".join(b)


def test_larger_last_part_is_copied_into_place(s3, bucket, bucket_dir):
    b = [os.urandom(PART), os.urandom(PART + 4321)]
    uid = start(s3, bucket)
    parts = [put_part(s3, bucket, "obj", uid, n, data) for n, data in enumerate(b, 1)]
    assert os.stat(upload_dir(bucket_dir, uid) / "00002").st_size == PART + 4321
    ino = data_inode(bucket_dir, uid)
    complete(s3, bucket, "obj", uid, parts)
    assert os.stat(bucket_dir / "obj").st_ino == ino, "the last part may be any size"
    assert (bucket_dir / "obj").read_bytes() == b"".join(b)


def test_reuploaded_part_replaces_the_in_place_bytes(s3, bucket, bucket_dir):
    b = blobs()
    uid = start(s3, bucket)
    parts = [put_part(s3, bucket, "obj", uid, n, data) for n, data in enumerate(b, 1)]
    new2 = os.urandom(PART)
    parts[1] = put_part(s3, bucket, "obj", uid, 2, new2)  # the slot is taken: its own file
    assert os.stat(upload_dir(bucket_dir, uid) / "00002").st_size == PART
    ino = data_inode(bucket_dir, uid)
    done = complete(s3, bucket, "obj", uid, parts)
    assert done["ETag"] == multipart_etag([b[0], new2, b[2]])
    assert os.stat(bucket_dir / "obj").st_ino == ino
    assert (bucket_dir / "obj").read_bytes() == b[0] + new2 + b[2]


def test_subset_and_trailing_parts_are_concatenated(s3, bucket, bucket_dir):
    b = blobs(n_full=3)
    uid = start(s3, bucket)
    parts = [put_part(s3, bucket, "obj", uid, n, data) for n, data in enumerate(b, 1)]
    # Parts 1 and 3: part 3's slot is not at the end of part 1.
    complete(s3, bucket, "obj", uid, [parts[0], parts[2]])
    assert (bucket_dir / "obj").read_bytes() == b[0] + b[2]
    # Parts 1 and 2 of an upload that also holds part 3: truncating the data file would cut a
    # recorded part, so the completion copies.
    uid = start(s3, bucket, key="obj2")
    parts = [put_part(s3, bucket, "obj2", uid, n, data) for n, data in enumerate(b, 1)]
    ino = data_inode(bucket_dir, uid)
    complete(s3, bucket, "obj2", uid, parts[:2])
    assert os.stat(bucket_dir / "obj2").st_ino != ino
    assert (bucket_dir / "obj2").read_bytes() == b[0] + b[1]


def test_failed_completion_keeps_every_part(s3, bucket, bucket_dir):
    b = blobs()
    whole = b"".join(b)
    want = base64.b64encode(zlib.crc32(whole).to_bytes(4, "big")).decode()
    wrong = base64.b64encode((zlib.crc32(whole) ^ 1).to_bytes(4, "big")).decode()
    uid = start(s3, bucket, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    parts = [put_part(s3, bucket, "obj", uid, n, data, ChecksumAlgorithm="CRC32") for n, data in enumerate(b, 1)]
    # The whole-object checksum is found wrong after the parts were laid out in the data file.
    code, _ = error_of(lambda: complete(s3, bucket, "obj", uid, parts, ChecksumCRC32=wrong,
                                        ChecksumType="FULL_OBJECT"))
    assert code == "BadDigest"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    d = upload_dir(bucket_dir, uid)
    assert (d / "sealed").exists(), "the completion sealed the upload"
    assert os.stat(d / "data").st_nlink == 1, "the failed completion's link is gone"
    # A part uploaded after a completion began is stored on its own, never in the data file.
    late = put_part(s3, bucket, "obj", uid, 4, os.urandom(100), ChecksumAlgorithm="CRC32")
    assert os.stat(d / "00004").st_size == 100
    assert not (d / "00004.slot").exists()
    assert late["PartNumber"] == 4
    ino = data_inode(bucket_dir, uid)
    done = complete(s3, bucket, "obj", uid, parts, ChecksumCRC32=want, ChecksumType="FULL_OBJECT")
    assert done["ETag"] == multipart_etag(b)
    assert os.stat(bucket_dir / "obj").st_ino == ino
    assert (bucket_dir / "obj").read_bytes() == whole


def test_interrupted_part_forces_the_copying_path(server, s3, raw, bucket, bucket_dir):
    b = blobs()
    uid = start(s3, bucket)
    parts = [put_part(s3, bucket, "obj", uid, 1, b[0])]
    # Part 2 declares 5 MiB, sends 1 MiB and hangs up: its slot was claimed and never done.
    target, headers, _ = raw.sign("PUT", key_path(bucket, "obj"), {"partNumber": "2", "uploadId": uid},
                                  {"Content-Length": str(PART)}, payload_hash="UNSIGNED-PAYLOAD")
    d = upload_dir(bucket_dir, uid)
    with socket.create_connection((server.host, server.port)) as sock:
        head = f"PUT {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode() + b[1][:MIB])
        for _ in range(200):
            if (d / "00002.slot").exists():
                break
            threading.Event().wait(0.05)
    assert (d / "00002.slot").exists()
    threading.Event().wait(0.5)  # the gateway sees the hang-up and drops the part
    assert not (d / "00002.done").exists() and not (d / "00002").exists()
    parts.append(put_part(s3, bucket, "obj", uid, 2, b[1]))  # the retry: its own file
    parts.append(put_part(s3, bucket, "obj", uid, 3, b[2]))
    assert os.stat(d / "00002").st_size == PART
    ino = data_inode(bucket_dir, uid)
    complete(s3, bucket, "obj", uid, parts)
    assert os.stat(bucket_dir / "obj").st_ino != ino, "a writer may still hold slot 2: copy"
    assert (bucket_dir / "obj").read_bytes() == b"".join(b)


def test_full_object_checksum_in_place(s3, bucket, bucket_dir):
    b = blobs()
    uid = start(s3, bucket, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    parts = [put_part(s3, bucket, "obj", uid, n, data, ChecksumAlgorithm="CRC32") for n, data in enumerate(b, 1)]
    ino = data_inode(bucket_dir, uid)
    whole = b"".join(b)
    want = base64.b64encode(zlib.crc32(whole).to_bytes(4, "big")).decode()
    done = complete(s3, bucket, "obj", uid, parts, ChecksumCRC32=want, ChecksumType="FULL_OBJECT")
    assert done["ChecksumCRC32"] == want
    assert os.stat(bucket_dir / "obj").st_ino == ino
    h = s3.head_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert h["ChecksumCRC32"] == want


def test_abort_removes_the_data_file(s3, bucket, bucket_dir):
    uid = start(s3, bucket, key="x/obj")
    put_part(s3, bucket, "x/obj", uid, 1, os.urandom(1000))
    assert (upload_dir(bucket_dir, uid) / "data").exists()
    s3.abort_multipart_upload(Bucket=bucket, Key="x/obj", UploadId=uid)
    assert not upload_dir(bucket_dir, uid).exists()
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
