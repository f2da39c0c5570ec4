"""ListObjects (v1) and ListObjectsV2: prefix, delimiter, marker / start-after, continuation
tokens, max-keys, encoding-type=url, fetch-owner, and S3's byte order with special characters."""

import re
import xml.etree.ElementTree as ET
from urllib.parse import unquote_plus

import pytest

from conflib import expect_raw, keys_of, ops, prefixes_of, put, s3_error, s3_order, unique

V1 = ops("ListObjects")
V2 = ops("ListObjectsV2")

KEYS = [
    "docs/",
    "docs/a b.txt",
    "docs/readme.md",
    "photos/2024/feb/2.jpg",
    "photos/2024/jan/1.jpg",
    "photos/2025/x.jpg",
    "top.txt",
    "obj+",
    "obj/x",
    "obj1",
    "plus+sign",
    "ünï/ö.txt",
    "zeta",
]

# Characters around '/' (0x2F) and beyond ASCII, each after the same stem, so only the byte
# order of that character decides.
ORDER_KEYS = [f"k{c}" for c in "!#$%&'()*+,-.0:;=@A[]_`a{}~"] + [
    "k/x", "kä", "k日", "k😀", "k\u00a0", "kZ/y", "k-x/z", "k.x/y",
]


@pytest.fixture(scope="module")
def lb(s3):
    name = unique("list-ro")
    s3.create_bucket(Bucket=name)
    for k in KEYS:
        put(s3, name, k, b"" if k.endswith("/") else k.encode())
    return name


@pytest.fixture(scope="module")
def ob(s3):
    name = unique("list-order")
    s3.create_bucket(Bucket=name)
    for k in ORDER_KEYS:
        put(s3, name, k, b"o")
    return name


def all_v2(s3, **kw):
    keys, prefixes, pages = [], [], 0
    token = None
    while True:
        args = dict(kw)
        if token:
            args["ContinuationToken"] = token
        r = s3.list_objects_v2(**args)
        pages += 1
        keys += keys_of(r)
        prefixes += prefixes_of(r)
        assert r["KeyCount"] == len(keys_of(r)) + len(prefixes_of(r))
        if not r["IsTruncated"]:
            assert "NextContinuationToken" not in r
            return keys, prefixes, pages
        token = r["NextContinuationToken"]
        assert pages < 100


def all_v1(s3, **kw):
    keys, prefixes, pages = [], [], 0
    marker = None
    while True:
        args = dict(kw)
        if marker:
            args["Marker"] = marker
        r = s3.list_objects(**args)
        pages += 1
        keys += keys_of(r)
        prefixes += prefixes_of(r)
        if not r["IsTruncated"]:
            return keys, prefixes, pages
        # Without a delimiter NextMarker is absent: the next marker is the last key.
        marker = r.get("NextMarker") or keys_of(r)[-1]
        assert pages < 100


# --- ListObjectsV2 ----------------------------------------------------------------------------


@V2
def test_v2_all_keys(s3, lb):
    r = s3.list_objects_v2(Bucket=lb)
    assert keys_of(r) == s3_order(KEYS)
    assert r["KeyCount"] == len(KEYS)
    assert r["IsTruncated"] is False
    assert r["Name"] == lb and r["MaxKeys"] == 1000 and r["Prefix"] == ""


@V2
def test_v2_entry_fields(s3, lb):
    o = next(o for o in s3.list_objects_v2(Bucket=lb)["Contents"] if o["Key"] == "top.txt")
    assert o["Size"] == len(b"top.txt")
    assert o["ETag"] == s3.head_object(Bucket=lb, Key="top.txt")["ETag"]
    assert o["StorageClass"] == "STANDARD"
    assert o["LastModified"].year >= 2024
    assert "Owner" not in o


@V2
def test_v2_fetch_owner(s3, lb):
    o = s3.list_objects_v2(Bucket=lb, FetchOwner=True)["Contents"][0]
    assert o["Owner"]["ID"]


@V2
def test_v2_empty_bucket(s3, bucket):
    r = s3.list_objects_v2(Bucket=bucket)
    assert r["KeyCount"] == 0 and "Contents" not in r and r["IsTruncated"] is False


PREFIXES = ["photos/", "photos/2024/", "doc", "obj", "ünï/", "nomatch", "docs/"]


@V2
@pytest.mark.parametrize("prefix", PREFIXES)
def test_v2_prefix(s3, lb, prefix):
    r = s3.list_objects_v2(Bucket=lb, Prefix=prefix)
    assert keys_of(r) == s3_order(k for k in KEYS if k.startswith(prefix))
    assert r["Prefix"] == prefix


@V2
def test_v2_delimiter_root(s3, lb):
    r = s3.list_objects_v2(Bucket=lb, Delimiter="/")
    assert keys_of(r) == s3_order(["top.txt", "obj+", "obj1", "plus+sign", "zeta"])
    assert prefixes_of(r) == s3_order(["docs/", "photos/", "obj/", "ünï/"])
    assert r["KeyCount"] == 9
    assert r["Delimiter"] == "/"


@V2
def test_v2_delimiter_with_prefix(s3, lb):
    r = s3.list_objects_v2(Bucket=lb, Prefix="photos/", Delimiter="/")
    assert keys_of(r) == [] and prefixes_of(r) == ["photos/2024/", "photos/2025/"]
    r = s3.list_objects_v2(Bucket=lb, Prefix="photos/2025/", Delimiter="/")
    assert keys_of(r) == ["photos/2025/x.jpg"] and prefixes_of(r) == []


@V2
def test_v2_delimiter_prefix_without_slash(s3, lb):
    r = s3.list_objects_v2(Bucket=lb, Prefix="photos/20", Delimiter="/")
    assert prefixes_of(r) == ["photos/2024/", "photos/2025/"]


@V2
def test_v2_marker_object_listed_with_children(s3, lb):
    r = s3.list_objects_v2(Bucket=lb, Prefix="docs/", Delimiter="/")
    assert keys_of(r) == ["docs/", "docs/a b.txt", "docs/readme.md"]


@V2
def test_v2_delimiter_not_slash(s3, lb):
    r = s3.list_objects_v2(Bucket=lb, Delimiter=".")
    assert prefixes_of(r) == s3_order(["docs/a b.", "docs/readme.", "photos/2024/feb/2.",
                                       "photos/2024/jan/1.", "photos/2025/x.", "top.", "ünï/ö."])
    assert keys_of(r) == s3_order(["docs/", "obj+", "obj/x", "obj1", "plus+sign", "zeta"])


@V2
def test_v2_delimiter_multi_character(s3, lb):
    r = s3.list_objects_v2(Bucket=lb, Delimiter="20")
    assert prefixes_of(r) == ["photos/20"]
    assert "photos/2024/feb/2.jpg" not in keys_of(r)


@V2
@pytest.mark.parametrize("max_keys", [1, 2, 3, 5, 12, 13])
def test_v2_paging(s3, lb, max_keys):
    keys, prefixes, pages = all_v2(s3, Bucket=lb, MaxKeys=max_keys)
    assert keys == s3_order(KEYS) and prefixes == []
    assert pages == -(-len(KEYS) // max_keys)


@V2
@pytest.mark.parametrize("max_keys", [1, 2, 4])
def test_v2_paging_with_delimiter(s3, lb, max_keys):
    keys, prefixes, _ = all_v2(s3, Bucket=lb, Delimiter="/", MaxKeys=max_keys)
    assert keys == s3_order(["top.txt", "obj+", "obj1", "plus+sign", "zeta"])
    assert prefixes == s3_order(["docs/", "photos/", "obj/", "ünï/"])


@V2
def test_v2_common_prefixes_count_toward_max_keys(s3, lb):
    r = s3.list_objects_v2(Bucket=lb, Delimiter="/", MaxKeys=2)
    assert r["KeyCount"] == 2 and r["IsTruncated"] is True
    assert prefixes_of(r) == ["docs/"] and keys_of(r) == ["obj+"]


START_AFTER = ["docs/", "obj+", "photos/2024/jan/1.jpg", "p", "zzz", "ünï/ö.txt"]


@V2
@pytest.mark.parametrize("start", START_AFTER)
def test_v2_start_after(s3, lb, start):
    r = s3.list_objects_v2(Bucket=lb, StartAfter=start)
    assert keys_of(r) == [k for k in s3_order(KEYS) if k.encode() > start.encode()]
    assert r["StartAfter"] == start


@V2
def test_v2_start_after_with_prefix(s3, lb):
    r = s3.list_objects_v2(Bucket=lb, Prefix="photos/", StartAfter="photos/2024/feb/2.jpg")
    assert keys_of(r) == ["photos/2024/jan/1.jpg", "photos/2025/x.jpg"]


@V2
def test_v2_continuation_token_wins_over_start_after(s3, lb):
    first = s3.list_objects_v2(Bucket=lb, MaxKeys=2)
    r = s3.list_objects_v2(Bucket=lb, MaxKeys=2, StartAfter="zzz",
                           ContinuationToken=first["NextContinuationToken"])
    assert keys_of(r) == s3_order(KEYS)[2:4]
    assert r["ContinuationToken"] == first["NextContinuationToken"]


@V2
def test_v2_invalid_continuation_token(s3, lb):
    with s3_error(400, "InvalidArgument"):
        s3.list_objects_v2(Bucket=lb, ContinuationToken="not-a-token")


@V2
def test_v2_max_keys_zero(s3, lb):
    r = s3.list_objects_v2(Bucket=lb, MaxKeys=0)
    assert "Contents" not in r and r["KeyCount"] == 0


@V2
def test_v2_max_keys_negative(raw, lb):
    expect_raw(raw.get(f"/{lb}", query={"list-type": "2", "max-keys": "-1"}), 400, "InvalidArgument")


@V2
def test_v2_max_keys_not_a_number(raw, lb):
    expect_raw(raw.get(f"/{lb}", query={"list-type": "2", "max-keys": "ten"}), 400, "InvalidArgument")


@V2
def test_v2_max_keys_above_1000_capped(s3, bucket):
    for i in range(3):
        put(s3, bucket, f"k{i}")
    r = s3.list_objects_v2(Bucket=bucket, MaxKeys=5000)
    assert len(keys_of(r)) == 3 and r["IsTruncated"] is False


@V2
def test_v2_many_keys_paged_at_1000(s3, bucket):
    keys = [f"many/{i:05d}" for i in range(1003)]
    for k in keys:
        put(s3, bucket, k, b"")
    r = s3.list_objects_v2(Bucket=bucket)
    assert r["KeyCount"] == 1000 and r["IsTruncated"] is True
    r2 = s3.list_objects_v2(Bucket=bucket, ContinuationToken=r["NextContinuationToken"])
    assert keys_of(r) + keys_of(r2) == keys


# --- byte order ------------------------------------------------------------------------------


@V2
def test_v2_byte_order(s3, ob):
    assert keys_of(s3.list_objects_v2(Bucket=ob)) == s3_order(ORDER_KEYS)


@V2
def test_v2_byte_order_paged(s3, ob):
    keys, _, _ = all_v2(s3, Bucket=ob, MaxKeys=4)
    assert keys == s3_order(ORDER_KEYS)


@V1
def test_v1_byte_order_paged(s3, ob):
    keys, _, _ = all_v1(s3, Bucket=ob, MaxKeys=3)
    assert keys == s3_order(ORDER_KEYS)


@V2
def test_v2_byte_order_with_delimiter(s3, ob):
    keys, prefixes, _ = all_v2(s3, Bucket=ob, Delimiter="/", MaxKeys=5)
    assert prefixes == s3_order(["k/", "kZ/", "k-x/", "k.x/"])
    assert keys == s3_order(k for k in ORDER_KEYS if "/" not in k)


@V2
def test_v2_start_after_between_special_characters(s3, ob):
    r = s3.list_objects_v2(Bucket=ob, StartAfter="k.")
    assert keys_of(r) == [k for k in s3_order(ORDER_KEYS) if k.encode() > b"k."]


# --- ListObjects (v1) -------------------------------------------------------------------------


@V1
def test_v1_all_keys(s3, lb):
    r = s3.list_objects(Bucket=lb)
    assert keys_of(r) == s3_order(KEYS)
    assert r["IsTruncated"] is False and r["Marker"] == "" and r["MaxKeys"] == 1000
    assert "NextMarker" not in r


@V1
@pytest.mark.parametrize("max_keys", [1, 4])
def test_v1_marker_paging(s3, lb, max_keys):
    keys, _, pages = all_v1(s3, Bucket=lb, MaxKeys=max_keys)
    assert keys == s3_order(KEYS)
    assert pages == -(-len(KEYS) // max_keys)


@V1
def test_v1_no_next_marker_without_delimiter(s3, lb):
    r = s3.list_objects(Bucket=lb, MaxKeys=2)
    assert r["IsTruncated"] is True and "NextMarker" not in r


@V1
def test_v1_next_marker_with_delimiter(s3, lb):
    r = s3.list_objects(Bucket=lb, Delimiter="/", MaxKeys=2)
    assert r["IsTruncated"] is True
    page = keys_of(r) + prefixes_of(r)
    assert r["NextMarker"] == s3_order(page)[-1]


@V1
def test_v1_paging_with_delimiter(s3, lb):
    keys, prefixes, _ = all_v1(s3, Bucket=lb, Delimiter="/", MaxKeys=1)
    assert keys == s3_order(["top.txt", "obj+", "obj1", "plus+sign", "zeta"])
    assert prefixes == s3_order(["docs/", "photos/", "obj/", "ünï/"])


@V1
@pytest.mark.parametrize("marker", ["docs/", "obj/x", "photos/", "zzz"])
def test_v1_marker(s3, lb, marker):
    r = s3.list_objects(Bucket=lb, Marker=marker)
    assert keys_of(r) == [k for k in s3_order(KEYS) if k.encode() > marker.encode()]


@V1
def test_v1_prefix_delimiter(s3, lb):
    r = s3.list_objects(Bucket=lb, Prefix="photos/2024/", Delimiter="/")
    assert prefixes_of(r) == ["photos/2024/feb/", "photos/2024/jan/"] and keys_of(r) == []


@V1
def test_v1_empty_bucket(s3, bucket):
    r = s3.list_objects(Bucket=bucket)
    assert "Contents" not in r and r["IsTruncated"] is False


@V1
def test_v1_entry_has_owner(s3, lb):
    o = s3.list_objects(Bucket=lb)["Contents"][0]
    assert o["Owner"]["ID"]


# --- encoding-type=url ------------------------------------------------------------------------

ENC_KEYS = ["a b/c+d.txt", "ü/ö?&=.txt", "pct%25/x", "plain/y"]


@pytest.fixture(scope="module")
def eb(s3):
    name = unique("list-enc")
    s3.create_bucket(Bucket=name)
    for k in ENC_KEYS:
        put(s3, name, k)
    return name


def _xml(r):
    return r.xml


def _encoded(value: str) -> bool:
    """URL-encoded: ASCII only, no raw space, '?', '&' or '=', every '%' an escape. (A raw '+' is
    caught by comparing unquote_plus(value) with the key.)"""
    return (all(ord(c) < 128 for c in value) and not re.search(r"[ ?&=]", value)
            and not re.search(r"%(?![0-9A-Fa-f]{2})", value))


def _texts(root, path):
    return [e.text for e in root.findall(path)]


@V2
def test_v2_encoding_type_url_keys(raw, eb):
    r = expect_raw(raw.get(f"/{eb}", query={"list-type": "2", "encoding-type": "url"}), 200)
    root = _xml(r)
    assert root.findtext("EncodingType") == "url"
    got = _texts(root, "Contents/Key")
    assert [unquote_plus(k) for k in got] == s3_order(ENC_KEYS)
    assert all(_encoded(k) for k in got), got


@V2
def test_v2_encoding_type_url_prefixes_and_delimiter(raw, eb):
    r = expect_raw(raw.get(f"/{eb}", query={"list-type": "2", "encoding-type": "url", "delimiter": "/",
                                            "prefix": "ü/"}), 200)
    root = _xml(r)
    assert unquote_plus(root.findtext("Prefix")) == "ü/" and _encoded(root.findtext("Prefix"))
    assert unquote_plus(root.findtext("Delimiter")) == "/"
    r = expect_raw(raw.get(f"/{eb}", query={"list-type": "2", "encoding-type": "url", "delimiter": "/"}), 200)
    got = _texts(_xml(r), "CommonPrefixes/Prefix")
    assert [unquote_plus(p) for p in got] == s3_order(["a b/", "ü/", "pct%25/", "plain/"])
    assert all(_encoded(p) for p in got), got


@V2
def test_v2_encoding_type_url_start_after(raw, eb):
    r = expect_raw(raw.get(f"/{eb}", query={"list-type": "2", "encoding-type": "url",
                                            "start-after": "a b/c+d.txt"}), 200)
    sa = _xml(r).findtext("StartAfter")
    assert unquote_plus(sa) == "a b/c+d.txt" and _encoded(sa)


@V2
def test_v2_encoding_type_url_boto3_roundtrip(s3, eb):
    # botocore asks for encoding-type=url itself and decodes the answer.
    r = s3.list_objects_v2(Bucket=eb)
    assert r["EncodingType"] == "url"
    assert keys_of(r) == s3_order(ENC_KEYS)


@V1
def test_v1_encoding_type_url(raw, eb):
    r = expect_raw(raw.get(f"/{eb}", query={"encoding-type": "url", "marker": "a b/c+d.txt"}), 200)
    root = _xml(r)
    assert unquote_plus(root.findtext("Marker")) == "a b/c+d.txt" and _encoded(root.findtext("Marker"))
    got = _texts(root, "Contents/Key")
    assert [unquote_plus(k) for k in got] == [k for k in s3_order(ENC_KEYS) if k.encode() > b"a b/c+d.txt"]
    assert all(_encoded(k) for k in got), got


@V1
def test_v1_encoding_type_url_boto3_roundtrip(s3, eb):
    r = s3.list_objects(Bucket=eb)
    assert r["EncodingType"] == "url"
    assert keys_of(r) == s3_order(ENC_KEYS)


@V2
def test_invalid_encoding_type(raw, eb):
    expect_raw(raw.get(f"/{eb}", query={"list-type": "2", "encoding-type": "base64"}), 400, "InvalidArgument")


@V2
def test_without_encoding_xml_escaped(raw, s3, bucket):
    put(s3, bucket, "a&b<c>d\"e'f")
    r = expect_raw(raw.get(f"/{bucket}", query={"list-type": "2"}), 200)
    assert b"a&amp;b&lt;c&gt;d" in r.body
    assert ET.fromstring(r.body) is not None
    assert _texts(_xml(r), "Contents/Key") == ["a&b<c>d\"e'f"]
