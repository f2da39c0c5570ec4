"""The dataset catalog on the admin listener: datasets over buckets and prefixes, search,
the object tag index, and the DCAT JSON-LD export parsed by a real RDF toolkit (rdflib)."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from helpers import boto_client
from test_operations import admin_url

TOKEN = "catalog-token-for-tests"


def call(base: str, method: str, path: str, body=None, token: str | None = TOKEN):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(base + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw.strip() else None), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, (json.loads(raw) if raw.strip() else None), e.headers.get("Content-Type")


ERA5 = {
    "bucket": "climate", "prefix": "era5/", "title": "ERA5 2 m temperature, hourly",
    "description": "Reanalysis of near-surface air temperature.", "steward": "data@hpc.example.org",
    "publisher": "Example HPC Centre", "license": "CC-BY-4.0", "keywords": ["reanalysis", "temperature"],
    "format": "application/x-netcdf", "domain": "climate", "temporal_start": "1979-01-01",
    "temporal_end": "2025-12-31", "spatial_bbox": [-180, -90, 180, 90], "extra": {"grid": "0.25 deg"},
}
IMAGES = {
    "bucket": "vision", "title": "Microscopy images for segmentation", "steward": "bio-steward",
    "keywords": ["microscopy", "segmentation"], "format": "tiff", "domain": "biology",
}


@pytest.fixture
def cat(spawn_server):
    s = spawn_server(extra_args=("--admin-listen", "127.0.0.1:0"), extra_env={"STRAIT_ADMIN_TOKEN": TOKEN})
    s3 = boto_client(s)
    for b in ("climate", "vision"):
        s3.create_bucket(Bucket=b)
    return s, s3, admin_url(s)


def test_datasets_crud_and_search(cat):
    s, s3, base = cat
    assert call(base, "GET", "/catalog/datasets", token=None)[0] == 401
    assert call(base, "GET", "/catalog/datasets", token="wrong")[0] == 401
    st, d, _ = call(base, "PUT", "/catalog/datasets/era5-t2m", ERA5)
    assert st == 201 and d["id"] == "era5-t2m" and d["created"] and d["modified"] == d["created"]
    assert call(base, "PUT", "/catalog/datasets/cells", IMAGES)[0] == 201
    st, d2, _ = call(base, "PUT", "/catalog/datasets/era5-t2m", {**ERA5, "title": "ERA5 2 m temperature"})
    assert st == 200 and d2["created"] == d["created"] and d2["title"] == "ERA5 2 m temperature"
    assert call(base, "GET", "/catalog/datasets/era5-t2m")[1]["title"] == "ERA5 2 m temperature"
    assert [x["id"] for x in call(base, "GET", "/catalog/datasets")[1]["datasets"]] == ["cells", "era5-t2m"]

    def search(q):
        return [x["id"] for x in call(base, "GET", "/catalog/search?" + q)[1]["datasets"]]

    assert search("keyword=Temperature") == ["era5-t2m"]
    assert search("q=reanalysis+air") == ["era5-t2m"]
    assert search("format=tiff") == ["cells"]
    assert search("steward=data%40hpc.example.org") == ["era5-t2m"]
    assert search("domain=biology&keyword=microscopy") == ["cells"]
    assert search("domain=biology&keyword=temperature") == []
    assert search("q=0.25") == ["era5-t2m"]  # free-form fields are searched too

    # Bad input: a clear 4xx naming the field, nothing stored.
    for doc, field in [({**ERA5, "bucket": "nope-missing"}, "bucket"), ({**ERA5, "temporal_end": "soon"}, "temporal_end"),
                       ({**ERA5, "spatial_bbox": [0, 50, 1, 10]}, "spatial_bbox"), ({**ERA5, "title": ""}, "title"),
                       ({**ERA5, "colour": "blue"}, "colour")]:
        st, err, _ = call(base, "PUT", "/catalog/datasets/bad", doc)
        assert st == 400 and field in err["error"], (field, st, err)
    assert call(base, "PUT", "/catalog/datasets/Bad_Id", ERA5)[0] == 400
    assert call(base, "PUT", "/catalog/datasets/bad", b"{not json")[0] == 400
    assert call(base, "GET", "/catalog/datasets/bad")[0] == 404
    assert call(base, "DELETE", "/catalog/datasets/cells")[0] == 204
    assert call(base, "DELETE", "/catalog/datasets/cells")[0] == 404

    # Datasets survive a restart (synced records in the metadata store).
    s.stop()
    s2_log = s.log_path.with_name("restart.log")
    from helpers import Server  # noqa: PLC0415
    s2 = Server(binary=s.binary, root=s.root, state_dir=s.state_dir, log_path=s2_log,
                extra_args=("--admin-listen", "127.0.0.1:0"), extra_env={"STRAIT_ADMIN_TOKEN": TOKEN}).start()
    try:
        assert [x["id"] for x in call(admin_url(s2), "GET", "/catalog/datasets")[1]["datasets"]] == ["era5-t2m"]
    finally:
        s2.stop()


def test_object_tag_index_follows_tagging_and_deletes(cat):
    s, s3, base = cat
    s3.put_object(Bucket="climate", Key="era5/1979.nc", Body=b"a", Tagging="quality=gold&var=t2m")
    s3.put_object(Bucket="climate", Key="era5/1980.nc", Body=b"b", Tagging="quality=draft")
    s3.put_object(Bucket="vision", Key="img/1.tif", Body=b"c", Tagging="quality=gold")

    def tagged(q):
        st, d, _ = call(base, "GET", "/catalog/objects?" + q)
        assert st == 200, d
        return sorted((o["bucket"], o["key"]) for o in d["objects"])

    assert tagged("tag=quality%3Dgold") == [("climate", "era5/1979.nc"), ("vision", "img/1.tif")]
    assert tagged("tag=quality%3Dgold&bucket=vision") == [("vision", "img/1.tif")]
    s3.put_object_tagging(Bucket="climate", Key="era5/1980.nc",
                          Tagging={"TagSet": [{"Key": "quality", "Value": "gold"}]})
    s3.delete_object_tagging(Bucket="climate", Key="era5/1979.nc")
    assert tagged("tag=quality%3Dgold") == [("climate", "era5/1980.nc"), ("vision", "img/1.tif")]
    s3.copy_object(Bucket="climate", Key="era5/copy.nc", CopySource={"Bucket": "climate", "Key": "era5/1980.nc"})
    assert ("climate", "era5/copy.nc") in tagged("tag=quality%3Dgold")  # copies keep tags by default
    s3.delete_object(Bucket="vision", Key="img/1.tif")
    assert ("vision", "img/1.tif") not in tagged("tag=quality%3Dgold")
    # A file removed behind Strait's back is not reported (hits are checked against the object).
    (s.root / "climate" / "era5" / "copy.nc").unlink()
    assert tagged("tag=quality%3Dgold") == [("climate", "era5/1980.nc")]
    assert call(base, "GET", "/catalog/objects?tag=novalue")[0] == 400

    # Datasets by tag: those holding an object that carries it.
    call(base, "PUT", "/catalog/datasets/era5-t2m", ERA5)  # climate/era5/
    call(base, "PUT", "/catalog/datasets/cells", IMAGES)  # vision/
    found = call(base, "GET", "/catalog/search?tag=quality%3Dgold")[1]["datasets"]
    assert [d["id"] for d in found] == ["era5-t2m"]
    assert call(base, "GET", "/catalog/search?tag=quality%3Dgold&domain=biology")[1]["datasets"] == []


def test_dcat_export_is_valid_json_ld(cat):
    # Imported here: pytest's collection probes module attributes, which rdflib's closed
    # namespaces answer with warnings.
    import rdflib
    from rdflib.namespace import DCAT, DCTERMS, RDF

    s, s3, base = cat
    call(base, "PUT", "/catalog/datasets/era5-t2m", ERA5)
    call(base, "PUT", "/catalog/datasets/cells", IMAGES)
    st, doc, ctype = call(base, "GET", "/catalog/dcat")
    assert st == 200 and ctype.startswith("application/ld+json")
    g = rdflib.Graph().parse(data=json.dumps(doc), format="json-ld")
    datasets = set(g.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) == 2
    catalogs = list(g.subjects(RDF.type, DCAT.Catalog))
    assert len(catalogs) == 1 and set(g.objects(catalogs[0], DCAT.dataset)) == datasets
    era5 = next(d for d in datasets if str(d).endswith("/catalog/datasets/era5-t2m"))
    assert str(g.value(era5, DCTERMS.title)) == ERA5["title"]
    assert {str(k) for k in g.objects(era5, DCAT.keyword)} == {"reanalysis", "temperature"}
    assert str(g.value(era5, DCTERMS.license)) == "https://spdx.org/licenses/CC-BY-4.0"
    period = g.value(era5, DCTERMS.temporal)
    assert str(g.value(period, DCAT.startDate)) == "1979-01-01"
    assert g.value(period, DCAT.startDate).datatype == rdflib.XSD.date
    dist = g.value(era5, DCAT.distribution)
    assert str(g.value(dist, DCAT.accessURL)) == "s3://climate/era5/"
    assert str(g.value(dist, DCAT.mediaType)).endswith("application/x-netcdf")
    contact = g.value(era5, DCAT.contactPoint)
    assert str(g.value(contact, rdflib.URIRef("http://www.w3.org/2006/vcard/ns#hasEmail"))) == \
        "mailto:data@hpc.example.org"
    bbox = g.value(g.value(era5, DCTERMS.spatial), DCAT.bbox)
    assert str(bbox).startswith("POLYGON((-180") and "wktLiteral" in str(bbox.datatype)


def test_catalog_cli(cat, tmp_path):
    s, s3, base = cat
    f = tmp_path / "era5.json"
    f.write_text(json.dumps(ERA5))

    def cli(*args, token=TOKEN):
        env = {"PATH": "/usr/bin:/bin"}
        if token:
            env["STRAIT_ADMIN_TOKEN"] = token
        return subprocess.run([s.binary, "catalog", "--admin", base, *args], capture_output=True, text=True,
                              timeout=60, env=env)

    r = cli("put", "era5-t2m", str(f))
    assert r.returncode == 0 and json.loads(r.stdout)["id"] == "era5-t2m", r.stderr
    r = cli("search", "--keyword", "temperature")
    assert [d["id"] for d in json.loads(r.stdout)["datasets"]] == ["era5-t2m"]
    r = cli("dcat")
    assert json.loads(r.stdout)["@type"] == "dcat:Catalog"
    r = cli("list", token=None)
    assert r.returncode == 1 and "401" in r.stderr
    r = cli("get", "missing")
    assert r.returncode == 1 and "404" in r.stderr and "no such dataset" in r.stderr
    assert cli("delete", "era5-t2m").returncode == 0
