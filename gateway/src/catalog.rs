//! The dataset catalog: buckets or prefixes registered as datasets with descriptive metadata,
//! searched by keyword, tag, format and steward, exported as DCAT (W3C Data Catalog
//! Vocabulary, version 3) in JSON-LD for data portals. Records live in the metadata store's
//! `datasets` table; the object tag index (`tags`) answers "which objects carry tag k=v".
//!
//! Served on the admin listener (`/catalog/...`), so only the administrator reaches it until
//! identities and policies exist: then an identity will see the datasets over buckets it may list.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A dataset: a bucket, or a prefix of one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// Format version (set by the gateway).
    #[serde(default)]
    pub v: u32,
    /// Identifier: 1-64 of `a-z 0-9 - _ .`, starting with a letter or digit (set from the URL).
    #[serde(default)]
    pub id: String,
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Who curates it (a name or an e-mail address): DCAT contact point.
    #[serde(default)]
    pub steward: String,
    #[serde(default)]
    pub publisher: String,
    /// A license URL or SPDX identifier.
    #[serde(default)]
    pub license: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Media type or format name (`application/x-netcdf`, `parquet`, ...).
    #[serde(default)]
    pub format: String,
    /// Scientific domain (DCAT theme), such as `climate`.
    #[serde(default)]
    pub domain: String,
    /// Temporal coverage: ISO 8601 dates or date-times.
    #[serde(default)]
    pub temporal_start: Option<String>,
    #[serde(default)]
    pub temporal_end: Option<String>,
    /// Spatial coverage as a bounding box: west, south, east, north (WGS 84 degrees).
    #[serde(default)]
    pub spatial_bbox: Option<[f64; 4]>,
    /// Free-form fields.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
    /// Set by the gateway (RFC 3339).
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub modified: String,
}

pub const FORMAT_VERSION: u32 = 1;

pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(c))
}

fn valid_date(s: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(s, &Rfc3339).is_ok()
        || time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).is_ok()
}

impl Dataset {
    /// Check a dataset as submitted; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !s3s::path::check_bucket_name(&self.bucket) {
            return Err(format!("bucket: {:?} is not a valid bucket name", self.bucket));
        }
        if self.prefix.starts_with('/') || self.prefix.contains('\0') || self.prefix.len() > 1024 {
            return Err("prefix: expected a key prefix (no leading '/', no NUL, at most 1024 bytes)".into());
        }
        if self.title.trim().is_empty() || self.title.len() > 1024 {
            return Err("title: required, at most 1024 bytes".into());
        }
        if self.description.len() > 64 << 10 {
            return Err("description: at most 64 KiB".into());
        }
        if self.keywords.len() > 100 || self.keywords.iter().any(|k| k.trim().is_empty() || k.len() > 256) {
            return Err("keywords: at most 100, each 1-256 bytes".into());
        }
        for (name, d) in [("temporal_start", &self.temporal_start), ("temporal_end", &self.temporal_end)] {
            if let Some(d) = d {
                if !valid_date(d) {
                    return Err(format!("{name}: {d:?} is not an ISO 8601 date (YYYY-MM-DD) or RFC 3339 date-time"));
                }
            }
        }
        if let (Some(a), Some(b)) = (&self.temporal_start, &self.temporal_end) {
            if a.len() >= 10 && b.len() >= 10 && a[..10] > b[..10] {
                return Err("temporal_end: before temporal_start".into());
            }
        }
        if let Some([w, s, e, n]) = self.spatial_bbox {
            let ok = (-180.0..=180.0).contains(&w)
                && (-180.0..=180.0).contains(&e)
                && (-90.0..=90.0).contains(&s)
                && (-90.0..=90.0).contains(&n)
                && s <= n;
            if !ok {
                return Err("spatial_bbox: expected [west, south, east, north] in degrees, south <= north".into());
            }
        }
        if self.extra.len() > 100 {
            return Err("extra: at most 100 fields".into());
        }
        Ok(())
    }

    /// `s3://bucket/prefix`.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// A search: every given criterion must hold (case-insensitive).
#[derive(Debug, Default)]
pub struct Query {
    /// Words that must each appear in the title, description, keywords, domain or extra values.
    pub text: Vec<String>,
    pub keyword: Option<String>,
    pub format: Option<String>,
    pub steward: Option<String>,
    pub bucket: Option<String>,
    pub domain: Option<String>,
}

impl Query {
    pub fn matches(&self, d: &Dataset) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_ref().is_none_or(|w| w.eq_ignore_ascii_case(have));
        let kw = self.keyword.as_ref().is_none_or(|w| d.keywords.iter().any(|k| k.eq_ignore_ascii_case(w)));
        let haystack = || {
            let mut h = format!("{} {} {} {}", d.title, d.description, d.keywords.join(" "), d.domain);
            for v in d.extra.values() {
                h.push(' ');
                h.push_str(v);
            }
            h.to_lowercase()
        };
        let text = self.text.is_empty() || {
            let h = haystack();
            self.text.iter().all(|w| h.contains(&w.to_lowercase()))
        };
        kw && text
            && eq(&self.format, &d.format)
            && eq(&self.steward, &d.steward)
            && eq(&self.bucket, &d.bucket)
            && eq(&self.domain, &d.domain)
    }
}

/// The catalog as DCAT 3 in JSON-LD. `base` is the URL datasets are identified under.
pub fn dcat(datasets: &[Dataset], base: &str) -> Value {
    let items: Vec<Value> = datasets.iter().map(|d| dcat_dataset(d, base)).collect();
    json!({
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/",
            "vcard": "http://www.w3.org/2006/vcard/ns#",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
            "skos": "http://www.w3.org/2004/02/skos/core#",
            "strait": "urn:strait:",
        },
        "@id": format!("{base}/catalog"),
        "@type": "dcat:Catalog",
        "dct:title": "Strait dataset catalog",
        "dcat:dataset": items,
    })
}

fn date_literal(s: &str) -> Value {
    let ty = if s.len() == 10 { "xsd:date" } else { "xsd:dateTime" };
    json!({"@value": s, "@type": ty})
}

fn dcat_dataset(d: &Dataset, base: &str) -> Value {
    let mut o = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_owned(), v);
    };
    put("@id", json!(format!("{base}/catalog/datasets/{}", d.id)));
    put("@type", json!("dcat:Dataset"));
    put("dct:identifier", json!(d.id));
    put("dct:title", json!(d.title));
    if !d.description.is_empty() {
        put("dct:description", json!(d.description));
    }
    if !d.keywords.is_empty() {
        put("dcat:keyword", json!(d.keywords));
    }
    if !d.domain.is_empty() {
        put("dcat:theme", json!({"@type": "skos:Concept", "skos:prefLabel": d.domain}));
    }
    if !d.publisher.is_empty() {
        put("dct:publisher", json!({"@type": "foaf:Agent", "foaf:name": d.publisher}));
    }
    if !d.steward.is_empty() {
        let mut cp = json!({"@type": "vcard:Kind", "vcard:fn": d.steward});
        if d.steward.contains('@') {
            cp["vcard:hasEmail"] = json!({"@id": format!("mailto:{}", d.steward)});
        }
        put("dcat:contactPoint", cp);
    }
    if !d.license.is_empty() {
        let lic = if d.license.contains("://") {
            json!({"@id": d.license})
        } else {
            json!({"@id": format!("https://spdx.org/licenses/{}", d.license)})
        };
        put("dct:license", lic);
    }
    if d.temporal_start.is_some() || d.temporal_end.is_some() {
        let mut t = json!({"@type": "dct:PeriodOfTime"});
        if let Some(s) = &d.temporal_start {
            t["dcat:startDate"] = date_literal(s);
        }
        if let Some(e) = &d.temporal_end {
            t["dcat:endDate"] = date_literal(e);
        }
        put("dct:temporal", t);
    }
    if let Some([w, s, e, n]) = d.spatial_bbox {
        let wkt = format!("POLYGON(({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))");
        put(
            "dct:spatial",
            json!({"@type": "dct:Location", "dcat:bbox": {"@value": wkt,
                "@type": "http://www.opengis.net/ont/geosparql#wktLiteral"}}),
        );
    }
    if !d.created.is_empty() {
        put("dct:issued", json!({"@value": d.created, "@type": "xsd:dateTime"}));
    }
    if !d.modified.is_empty() {
        put("dct:modified", json!({"@value": d.modified, "@type": "xsd:dateTime"}));
    }
    let mut dist = json!({
        "@type": "dcat:Distribution",
        "dcat:accessURL": {"@id": d.location()},
        "dct:title": format!("S3 prefix {}", d.location()),
    });
    if !d.format.is_empty() {
        if d.format.contains('/') {
            dist["dcat:mediaType"] =
                json!({"@id": format!("https://www.iana.org/assignments/media-types/{}", d.format)});
        } else {
            dist["dct:format"] = json!(d.format);
        }
    }
    put("dcat:distribution", json!([dist]));
    if !d.extra.is_empty() {
        // Free-form fields stay visible to JSON consumers, outside the RDF graph.
        put("strait:extra", json!(d.extra));
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Dataset {
        Dataset {
            id: "era5-t2m".into(),
            bucket: "climate".into(),
            prefix: "runs/".into(),
            title: "ERA5 2 m temperature".into(),
            keywords: vec!["reanalysis".into(), "temperature".into()],
            steward: "data@example.org".into(),
            format: "application/x-netcdf".into(),
            temporal_start: Some("1979-01-01".into()),
            temporal_end: Some("2025-12-31".into()),
            spatial_bbox: Some([-180.0, -90.0, 180.0, 90.0]),
            ..Default::default()
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert!(sample().validate().is_ok());
        let mut d = sample();
        d.temporal_start = Some("last year".into());
        assert!(d.validate().unwrap_err().starts_with("temporal_start:"));
        let mut d = sample();
        d.spatial_bbox = Some([0.0, 10.0, 1.0, 5.0]);
        assert!(d.validate().unwrap_err().starts_with("spatial_bbox:"));
        let mut d = sample();
        d.bucket = "No_Such".into();
        assert!(d.validate().unwrap_err().starts_with("bucket:"));
        assert!(valid_id("era5-t2m") && !valid_id("-x") && !valid_id("Upper") && !valid_id(""));
    }

    #[test]
    fn search_is_conjunctive_and_case_insensitive() {
        let d = sample();
        let q = |f: fn(&mut Query)| {
            let mut q = Query::default();
            f(&mut q);
            q.matches(&d)
        };
        assert!(q(|q| q.keyword = Some("Temperature".into())));
        assert!(q(|q| q.text = vec!["era5".into(), "2 m".into()]));
        assert!(!q(|q| q.text = vec!["era5".into(), "precipitation".into()]));
        assert!(q(|q| q.steward = Some("DATA@example.org".into())));
        assert!(!q(|q| q.format = Some("parquet".into())));
    }
}
