"""ListObjects v1 and v2: order, prefixes, delimiters, paging, URL encoding, the tree on disk."""

import os
from urllib.parse import unquote_plus

import pytest

from helpers import md5_hex, s3_error


def put_keys(s3, bucket, keys, body=b"x"):
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=body)


def all_keys_v2(s3, bucket, **kw):
    keys, prefixes = [], []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, **kw):
        keys += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    return keys, prefixes


def bytewise(keys):
    return sorted(keys, key=lambda k: k.encode())


def test_list_v2_basic(s3, bucket):
    put_keys(s3, bucket, ["b", "a", "c/d"])
    resp = s3.list_objects_v2(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [o["Key"] for o in resp["Contents"]] == ["a", "b", "c/d"]
    assert resp["KeyCount"] == 3
    assert resp["IsTruncated"] is False
    assert resp["Name"] == bucket
    o = resp["Contents"][0]
    assert o["Size"] == 1
    assert o["ETag"] == f'"{md5_hex(b"x")}"'
    assert o["StorageClass"] == "STANDARD"
    assert "LastModified" in o
    assert "Owner" not in o  # only with fetch-owner


def test_list_v2_empty_bucket(s3, bucket):
    resp = s3.list_objects_v2(Bucket=bucket)
    assert resp["KeyCount"] == 0
    assert "Contents" not in resp
    assert resp["IsTruncated"] is False


def test_list_v2_fetch_owner(s3, bucket):
    put_keys(s3, bucket, ["a"])
    resp = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)
    assert "ID" in resp["Contents"][0]["Owner"]


def test_list_order_plus_slash_digit(s3, bucket):
    # Byte order: '+' (0x2B) < '-' (0x2D) < '.' (0x2E) < '/' (0x2F) < '1' (0x31). A file-system walk
    # that visits directory "obj" as a unit would put "obj/x" in the wrong place.
    keys = ["obj1", "obj/x", "obj+", "obj.txt", "obj-", "obj/y/z", "obj0"]
    put_keys(s3, bucket, keys)
    got, _ = all_keys_v2(s3, bucket)
    assert got == ["obj+", "obj-", "obj.txt", "obj/x", "obj/y/z", "obj0", "obj1"]
    assert got == bytewise(keys)


def test_list_order_with_delimiter_paged(s3, bucket):
    put_keys(s3, bucket, ["obj1", "obj/x", "obj+", "obj.txt", "obj/y/z"])
    seq, token = [], None
    for _ in range(20):
        kw = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=1, **kw)
        seq += [o["Key"] for o in r.get("Contents", [])] + [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
    assert seq == ["obj+", "obj.txt", "obj/", "obj1"]


def test_list_order_nested_unicode(s3, bucket):
    keys = ["a/b/c/d", "a/b+", "a/b/c+", "a/b0", "a/é", "a/z", "a/~", "A", "a/b/c/"]
    put_keys(s3, bucket, [k for k in keys if not k.endswith("/")])
    s3.put_object(Bucket=bucket, Key="a/b/c/", Body=b"")
    got, _ = all_keys_v2(s3, bucket)
    assert got == bytewise(keys)


def test_list_v2_prefix(s3, bucket):
    put_keys(s3, bucket, ["dir/file1", "dir/file2", "dir/other", "dirt", "di"])
    got, _ = all_keys_v2(s3, bucket, Prefix="dir/fi")
    assert got == ["dir/file1", "dir/file2"]
    got, _ = all_keys_v2(s3, bucket, Prefix="dir")
    assert got == ["dir/file1", "dir/file2", "dir/other", "dirt"]


def test_list_v2_prefix_no_match(s3, bucket):
    put_keys(s3, bucket, ["a/b"])
    resp = s3.list_objects_v2(Bucket=bucket, Prefix="zzz/")
    assert resp["KeyCount"] == 0


def test_list_v2_delimiter(s3, bucket):
    put_keys(s3, bucket, ["top", "photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg",
                          "photos/readme", "videos/v.mp4"])
    keys, prefixes = all_keys_v2(s3, bucket, Delimiter="/")
    assert keys == ["top"]
    assert prefixes == ["photos/", "videos/"]
    keys, prefixes = all_keys_v2(s3, bucket, Delimiter="/", Prefix="photos/")
    assert keys == ["photos/readme"]
    assert prefixes == ["photos/2024/", "photos/2025/"]
    keys, prefixes = all_keys_v2(s3, bucket, Delimiter="/", Prefix="photos/20")
    assert keys == [] and prefixes == ["photos/2024/", "photos/2025/"]


def test_list_v2_delimiter_not_slash(s3, bucket):
    put_keys(s3, bucket, ["a-1", "a-2", "b", "c-x/y"])
    keys, prefixes = all_keys_v2(s3, bucket, Delimiter="-")
    assert keys == ["b"]
    assert prefixes == ["a-", "c-"]


def test_list_v2_key_count_counts_prefixes(s3, bucket):
    put_keys(s3, bucket, ["a/1", "a/2", "b/1", "c"])
    resp = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert resp["KeyCount"] == 3  # c, a/, b/


def test_list_v2_dir_marker_listed(s3, bucket):
    s3.put_object(Bucket=bucket, Key="m/", Body=b"")
    s3.put_object(Bucket=bucket, Key="m/child", Body=b"x")
    keys, _ = all_keys_v2(s3, bucket)
    assert keys == ["m/", "m/child"]
    keys, prefixes = all_keys_v2(s3, bucket, Prefix="m/", Delimiter="/")
    assert keys == ["m/", "m/child"] and prefixes == []
    resp = s3.list_objects_v2(Bucket=bucket, Prefix="m/")
    assert resp["Contents"][0]["Size"] == 0


def test_list_v2_paging_continuation(s3, bucket):
    keys = [f"p/{i:03d}" for i in range(25)] + [f"q{i}" for i in range(5)]
    put_keys(s3, bucket, keys)
    seen, token, pages = [], None, 0
    while True:
        kw = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=bucket, MaxKeys=7, **kw)
        pages += 1
        assert r["MaxKeys"] == 7
        assert r["KeyCount"] == len(r.get("Contents", [])) <= 7
        if token:
            assert r["ContinuationToken"] == token
        seen += [o["Key"] for o in r.get("Contents", [])]
        if not r["IsTruncated"]:
            assert "NextContinuationToken" not in r
            break
        token = r["NextContinuationToken"]
    assert seen == bytewise(keys)
    assert pages == 5


def test_list_v2_paging_with_delimiter(s3, bucket):
    put_keys(s3, bucket, [f"d{i}/x" for i in range(6)] + [f"f{i}" for i in range(6)])
    keys, prefixes = all_keys_v2(s3, bucket, Delimiter="/", PaginationConfig={"PageSize": 4})
    assert prefixes == [f"d{i}/" for i in range(6)]
    assert keys == [f"f{i}" for i in range(6)]


def test_list_v2_start_after(s3, bucket):
    put_keys(s3, bucket, ["a", "b/c", "b/d", "c"])
    r = s3.list_objects_v2(Bucket=bucket, StartAfter="b/c")
    assert [o["Key"] for o in r["Contents"]] == ["b/d", "c"]
    assert r["StartAfter"] == "b/c"
    r = s3.list_objects_v2(Bucket=bucket, StartAfter="b")  # not itself a key
    assert [o["Key"] for o in r["Contents"]] == ["b/c", "b/d", "c"]
    r = s3.list_objects_v2(Bucket=bucket, StartAfter="zzz")
    assert r["KeyCount"] == 0


def test_list_v2_invalid_continuation_token(s3, bucket):
    with s3_error(400, "InvalidArgument"):
        s3.list_objects_v2(Bucket=bucket, ContinuationToken="definitely-not-a-token")


def test_list_v2_invalid_max_keys(raw, bucket):
    r = raw.get(f"/{bucket}", query={"list-type": "2", "max-keys": "-1"})
    assert r.status == 400, r
    assert r.code == "InvalidArgument", r


def test_list_v2_max_keys_zero(s3, bucket):
    put_keys(s3, bucket, ["a"])
    r = s3.list_objects_v2(Bucket=bucket, MaxKeys=0)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["KeyCount"] == 0 and "Contents" not in r


def test_list_v1_basic(s3, bucket):
    put_keys(s3, bucket, ["x", "y/z"])
    r = s3.list_objects(Bucket=bucket)
    assert [o["Key"] for o in r["Contents"]] == ["x", "y/z"]
    assert r["IsTruncated"] is False
    assert "ID" in r["Contents"][0]["Owner"]  # v1 always names the owner


def test_list_v1_marker_paging(s3, bucket):
    keys = [f"k{i:02d}" for i in range(11)]
    put_keys(s3, bucket, keys)
    seen, marker = [], ""
    for _ in range(10):
        r = s3.list_objects(Bucket=bucket, MaxKeys=4, Marker=marker)
        assert r.get("Marker", "") == marker
        page = [o["Key"] for o in r.get("Contents", [])]
        seen += page
        if not r["IsTruncated"]:
            break
        marker = r.get("NextMarker") or page[-1]
    assert seen == keys


def test_list_v1_next_marker_with_delimiter(s3, bucket):
    put_keys(s3, bucket, ["a/1", "b/1", "c", "d/1"])
    r = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert r["IsTruncated"] is True
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/", "b/"]
    assert r["NextMarker"] == "b/"
    r2 = s3.list_objects(Bucket=bucket, Delimiter="/", Marker=r["NextMarker"])
    assert [o["Key"] for o in r2.get("Contents", [])] == ["c"]
    assert [p["Prefix"] for p in r2["CommonPrefixes"]] == ["d/"]


def test_list_v1_marker_inside_directory(s3, bucket):
    put_keys(s3, bucket, ["a", "b/c", "b/d", "c"])
    r = s3.list_objects(Bucket=bucket, Marker="b/c")
    assert [o["Key"] for o in r["Contents"]] == ["b/d", "c"]


NASTY = ["sp ace", "plus+", "pct%41", "amp&lt", "lt<gt>", "quo\"te", "ap'os", "uni/ünï/日本",
         "nl\nline", "tab\tx", "emoji😀/x", "q?x=1", "hash#1", "semi;", "eq=", "back\\slash"]


def test_list_encoding_type_url(raw, s3, bucket):
    put_keys(s3, bucket, NASTY)
    r = raw.get(f"/{bucket}", query={"list-type": "2", "encoding-type": "url"})
    assert r.status == 200, r
    root = r.xml
    assert root.findtext("EncodingType") == "url"
    encoded = [c.findtext("Key") for c in root.findall("Contents")]
    # Encoded keys carry no raw space, '+' means space, so a literal '+' must be %2B.
    assert all(" " not in k and "\n" not in k for k in encoded), encoded
    decoded = [unquote_plus(k) for k in encoded]
    assert decoded == bytewise(NASTY)


def test_list_encoding_type_url_prefixes(raw, s3, bucket):
    put_keys(s3, bucket, ["dir one/a", "dir+two/b", "ü/c"])
    r = raw.get(f"/{bucket}", query={"list-type": "2", "encoding-type": "url", "delimiter": "/"})
    assert r.status == 200, r
    prefixes = [unquote_plus(p.findtext("Prefix")) for p in r.xml.findall("CommonPrefixes")]
    assert prefixes == bytewise(["dir one/", "dir+two/", "ü/"])


def test_list_encoding_type_url_v1(raw, s3, bucket):
    put_keys(s3, bucket, ["a b", "c+d"])
    r = raw.get(f"/{bucket}", query={"encoding-type": "url"})
    assert r.status == 200, r
    assert [unquote_plus(c.findtext("Key")) for c in r.xml.findall("Contents")] == ["a b", "c+d"]


def test_list_without_encoding_escapes_xml(raw, s3, bucket):
    keys = ["amp&lt", "lt<gt>", "quo\"te", "ap'os", "uni/ünï"]
    put_keys(s3, bucket, keys)
    r = raw.get(f"/{bucket}", query={"list-type": "2"})
    assert r.status == 200, r
    assert [c.findtext("Key") for c in r.xml.findall("Contents")] == bytewise(keys)


def test_list_invalid_encoding_type(raw, bucket):
    r = raw.get(f"/{bucket}", query={"list-type": "2", "encoding-type": "base64"})
    assert r.status == 400, r
    assert r.code == "InvalidArgument", r


def test_list_files_created_on_disk(s3, bucket, bucket_dir):
    (bucket_dir / "deep" / "er" / "est").mkdir(parents=True)
    (bucket_dir / "deep" / "er" / "est" / "leaf.txt").write_bytes(b"leaf")
    (bucket_dir / "deep" / "top.txt").write_bytes(b"top!")
    (bucket_dir / "root file").write_bytes(b"r")
    keys, _ = all_keys_v2(s3, bucket)
    assert keys == ["deep/er/est/leaf.txt", "deep/top.txt", "root file"]
    r = s3.list_objects_v2(Bucket=bucket, Prefix="deep/er/")
    assert r["Contents"][0]["Size"] == 4
    assert r["Contents"][0]["ETag"].startswith('"')


def test_list_skips_symlinks_and_fifos(s3, bucket, bucket_dir, outside_dir):
    s3.put_object(Bucket=bucket, Key="real", Body=b"real")
    s3.put_object(Bucket=bucket, Key="sub/real2", Body=b"real")
    os.symlink(bucket_dir / "real", bucket_dir / "link-to-real")
    os.symlink(outside_dir / "secret.txt", bucket_dir / "link-outside")
    os.symlink(outside_dir, bucket_dir / "linkdir")
    os.symlink(bucket_dir / "sub", bucket_dir / "linkdir-inside")
    os.symlink("/nonexistent/dangling", bucket_dir / "dangling")
    os.mkfifo(bucket_dir / "fifo")
    os.mkfifo(bucket_dir / "sub" / "fifo2")
    keys, _ = all_keys_v2(s3, bucket)
    assert keys == ["real", "sub/real2"]
    keys, prefixes = all_keys_v2(s3, bucket, Delimiter="/")
    assert keys == ["real"] and prefixes == ["sub/"]


def test_list_hides_internal_names(s3, bucket, bucket_dir):
    s3.put_object(Bucket=bucket, Key="visible", Body=b"x")
    (bucket_dir / ".strait-staging-file").write_bytes(b"internal")
    (bucket_dir / ".strait").mkdir()
    (bucket_dir / ".strait" / "inner").write_bytes(b"internal")
    (bucket_dir / "d").mkdir()
    (bucket_dir / "d" / ".strait.tmp").write_bytes(b"internal")
    keys, prefixes = all_keys_v2(s3, bucket)
    assert keys == ["visible"]
    keys, prefixes = all_keys_v2(s3, bucket, Delimiter="/")
    assert ".strait/" not in prefixes


def test_list_unicode_prefix(s3, bucket):
    put_keys(s3, bucket, ["ünï/a", "ünï/b", "uni/c"])
    keys, _ = all_keys_v2(s3, bucket, Prefix="ünï/")
    assert keys == ["ünï/a", "ünï/b"]


@pytest.mark.parametrize("version", [1, 2])
def test_list_many_keys_one_directory(s3, bucket, version):
    keys = [f"flat/{i:04d}" for i in range(1100)]
    import concurrent.futures as cf

    with cf.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), keys))
    if version == 2:
        r = s3.list_objects_v2(Bucket=bucket)
        assert r["KeyCount"] == 1000 and r["IsTruncated"] is True  # max-keys defaults to 1000
        got, _ = all_keys_v2(s3, bucket)
    else:
        r = s3.list_objects(Bucket=bucket)
        assert len(r["Contents"]) == 1000 and r["IsTruncated"] is True
        got = []
        for page in s3.get_paginator("list_objects").paginate(Bucket=bucket):
            got += [o["Key"] for o in page.get("Contents", [])]
    assert got == keys
