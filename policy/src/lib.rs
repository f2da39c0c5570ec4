//! Authorization policy evaluation for Strait (pure code: no I/O, no async).
//!
//! The AWS IAM policy language as S3 uses it for bucket and identity policies:
//! - [`Policy::parse`] reads a policy document (AWS's JSON, with its single-value-or-list
//!   shorthands) and refuses what AWS refuses (unknown effect, missing action or resource,
//!   both `Action` and `NotAction`, unknown condition operators) with a message naming the
//!   statement and the field;
//! - [`Policy::evaluate`] answers one request ([`Request`]): explicit deny > allow > implicit
//!   deny, over `Principal`/`NotPrincipal`, `Action`/`NotAction` (case-insensitive wildcards),
//!   `Resource`/`NotResource` (case-sensitive wildcards: a policy on `arn:aws:s3:::jack` never
//!   matches `jackson`), policy variables (`${aws:username}`, `${s3:prefix}`, `${*}`, `${?}`,
//!   `${$}`), and the condition operators String*, Numeric*, Date*, Bool, IpAddress/NotIpAddress,
//!   Arn*, Null, their `...IfExists` forms, and the `ForAnyValue:`/`ForAllValues:` set
//!   qualifiers, with AWS's rules for keys absent from the request.
//!
//! Wiring into the gateway (tenants, identities, Get/PutBucketPolicy, combining bucket and
//! identity policies across tenants) is the policy issue's next step; this crate decides only.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// The outcome of evaluating policies for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement allowed the request and none denied it.
    Allow,
    /// A statement denied the request.
    ExplicitDeny,
    /// No statement applied.
    ImplicitDeny,
}

impl Decision {
    /// Combine decisions of several policies (bucket policy, identity policies...).
    pub fn combine(self, other: Decision) -> Decision {
        use Decision::*;
        match (self, other) {
            (ExplicitDeny, _) | (_, ExplicitDeny) => ExplicitDeny,
            (Allow, _) | (_, Allow) => Allow,
            _ => ImplicitDeny,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// `Principal` / `NotPrincipal`: `"*"` or `{"AWS": [...]}` (also `CanonicalUser`, `Federated`).
#[derive(Debug, Clone, PartialEq)]
pub enum Principals {
    Any,
    /// (kind, value) pairs, e.g. ("AWS", "arn:aws:iam::123:user/alice") or ("AWS", "*").
    Listed(Vec<(String, String)>),
}

/// One condition test: `operator` over `key` with `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub op: Op,
    pub qualifier: Qualifier,
    pub if_exists: bool,
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        use Op::*;
        Some(match s {
            "StringEquals" => StringEquals,
            "StringNotEquals" => StringNotEquals,
            "StringEqualsIgnoreCase" => StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => StringNotEqualsIgnoreCase,
            "StringLike" => StringLike,
            "StringNotLike" => StringNotLike,
            "NumericEquals" => NumericEquals,
            "NumericNotEquals" => NumericNotEquals,
            "NumericLessThan" => NumericLessThan,
            "NumericLessThanEquals" => NumericLessThanEquals,
            "NumericGreaterThan" => NumericGreaterThan,
            "NumericGreaterThanEquals" => NumericGreaterThanEquals,
            "DateEquals" => DateEquals,
            "DateNotEquals" => DateNotEquals,
            "DateLessThan" => DateLessThan,
            "DateLessThanEquals" => DateLessThanEquals,
            "DateGreaterThan" => DateGreaterThan,
            "DateGreaterThanEquals" => DateGreaterThanEquals,
            "Bool" => Bool,
            "IpAddress" => IpAddress,
            "NotIpAddress" => NotIpAddress,
            "ArnEquals" => ArnEquals,
            "ArnLike" => ArnLike,
            "ArnNotEquals" => ArnNotEquals,
            "ArnNotLike" => ArnNotLike,
            "Null" => Null,
            _ => return None,
        })
    }

    /// Negated operators hold when the key is absent (AWS: "...NotEquals" of nothing is true).
    fn negated(self) -> bool {
        use Op::*;
        matches!(
            self,
            StringNotEquals
                | StringNotEqualsIgnoreCase
                | StringNotLike
                | NumericNotEquals
                | DateNotEquals
                | NotIpAddress
                | ArnNotEquals
                | ArnNotLike
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Option<Principals>,
    pub not_principal: Option<Principals>,
    pub action: Option<Vec<String>>,
    pub not_action: Option<Vec<String>>,
    pub resource: Option<Vec<String>>,
    pub not_resource: Option<Vec<String>>,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: String,
    pub statements: Vec<Statement>,
}

/// What is being asked.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The calling principal's identifiers as they may appear under `Principal.AWS`: its ARN,
    /// its account id, ... Empty for an anonymous request (only `"*"` matches it).
    pub principals: Vec<String>,
    /// `s3:GetObject`, ...
    pub action: String,
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
    pub resource: String,
    /// Condition keys (case-insensitive names) → values; multi-valued keys have several.
    pub context: BTreeMap<String, Vec<String>>,
}

impl Request {
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.context.entry(key.to_ascii_lowercase()).or_default().push(value.into());
        self
    }

    fn get(&self, key: &str) -> Option<&Vec<String>> {
        self.context.get(&key.to_ascii_lowercase())
    }
}

// --- parsing ------------------------------------------------------------------------------------

fn strings(v: &serde_json::Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        serde_json::Value::String(s) => Ok(vec![s.clone()]),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| match x {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Bool(b) => Ok(b.to_string()),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                _ => Err(format!("{what}: expected strings")),
            })
            .collect(),
        serde_json::Value::Bool(b) => Ok(vec![b.to_string()]),
        serde_json::Value::Number(n) => Ok(vec![n.to_string()]),
        _ => Err(format!("{what}: expected a string or a list of strings")),
    }
}

fn principals(v: &serde_json::Value, what: &str) -> Result<Principals, String> {
    match v {
        serde_json::Value::String(s) if s == "*" => Ok(Principals::Any),
        serde_json::Value::Object(m) => {
            let mut out = Vec::new();
            for (kind, vals) in m {
                if !["AWS", "CanonicalUser", "Federated", "Service"].contains(&kind.as_str()) {
                    return Err(format!("{what}: unknown principal type {kind:?}"));
                }
                for v in strings(vals, what)? {
                    out.push((kind.clone(), v));
                }
            }
            Ok(Principals::Listed(out))
        }
        _ => Err(format!("{what}: expected \"*\" or an object such as {{\"AWS\": [...]}}")),
    }
}

impl Policy {
    /// Parse a policy document.
    pub fn parse(json: &str) -> Result<Policy, String> {
        let doc: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("policy is not JSON: {e}"))?;
        let obj = doc.as_object().ok_or("policy: expected a JSON object")?;
        for k in obj.keys() {
            if !["Version", "Id", "Statement"].contains(&k.as_str()) {
                return Err(format!("policy: unknown field {k:?}"));
            }
        }
        let version = match obj.get("Version") {
            None => "2008-10-17".to_owned(),
            Some(serde_json::Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => v.clone(),
            Some(v) => return Err(format!("Version: expected \"2012-10-17\" or \"2008-10-17\", got {v}")),
        };
        let stmts = match obj.get("Statement") {
            Some(serde_json::Value::Array(a)) => a.clone(),
            Some(o @ serde_json::Value::Object(_)) => vec![o.clone()],
            _ => return Err("Statement: required, an object or a list of objects".into()),
        };
        let mut statements = Vec::new();
        for (i, s) in stmts.iter().enumerate() {
            statements.push(Self::statement(s, i)?);
        }
        Ok(Policy { version, statements })
    }

    fn statement(s: &serde_json::Value, i: usize) -> Result<Statement, String> {
        let m = s.as_object().ok_or(format!("Statement[{i}]: expected an object"))?;
        let at = |f: &str| format!("Statement[{i}].{f}");
        for k in m.keys() {
            let known = [
                "Sid",
                "Effect",
                "Principal",
                "NotPrincipal",
                "Action",
                "NotAction",
                "Resource",
                "NotResource",
                "Condition",
            ];
            if !known.contains(&k.as_str()) {
                return Err(format!("{}: unknown field", at(k)));
            }
        }
        let effect = match m.get("Effect").and_then(|v| v.as_str()) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            _ => return Err(format!("{}: expected \"Allow\" or \"Deny\"", at("Effect"))),
        };
        let list = |f: &str| m.get(f).map(|v| strings(v, &at(f))).transpose();
        let (action, not_action) = (list("Action")?, list("NotAction")?);
        if action.is_some() == not_action.is_some() {
            return Err(format!("{}: exactly one of Action and NotAction is required", at("Action")));
        }
        let (resource, not_resource) = (list("Resource")?, list("NotResource")?);
        if resource.is_some() && not_resource.is_some() {
            return Err(format!("{}: Resource and NotResource together", at("Resource")));
        }
        let principal = m.get("Principal").map(|v| principals(v, &at("Principal"))).transpose()?;
        let not_principal = m.get("NotPrincipal").map(|v| principals(v, &at("NotPrincipal"))).transpose()?;
        let mut conditions = Vec::new();
        if let Some(c) = m.get("Condition") {
            let c = c.as_object().ok_or(format!("{}: expected an object", at("Condition")))?;
            for (op_name, keys) in c {
                let (qualifier, rest) = if let Some(r) = op_name.strip_prefix("ForAnyValue:") {
                    (Qualifier::ForAnyValue, r)
                } else if let Some(r) = op_name.strip_prefix("ForAllValues:") {
                    (Qualifier::ForAllValues, r)
                } else {
                    (Qualifier::Single, op_name.as_str())
                };
                let (rest, if_exists) = match rest.strip_suffix("IfExists") {
                    Some(r) if r != "Null" => (r, true),
                    _ => (rest, false),
                };
                let op = Op::parse(rest).ok_or(format!("{}: unknown operator {op_name:?}", at("Condition")))?;
                let keys = keys.as_object().ok_or(format!("{}.{op_name}: expected an object", at("Condition")))?;
                for (key, vals) in keys {
                    let values = strings(vals, &format!("{}.{op_name}.{key}", at("Condition")))?;
                    conditions.push(Condition { op, qualifier, if_exists, key: key.clone(), values });
                }
            }
        }
        Ok(Statement {
            sid: m.get("Sid").and_then(|v| v.as_str()).map(str::to_owned),
            effect,
            principal,
            not_principal,
            action,
            not_action,
            resource,
            not_resource,
            conditions,
        })
    }

    /// Evaluate this policy alone for `req`.
    pub fn evaluate(&self, req: &Request) -> Decision {
        self.explain(req).0
    }

    /// Evaluate and say which statement decided: the first Deny that applies, else the first
    /// Allow; `None` for an implicit deny (no statement applied).
    pub fn explain(&self, req: &Request) -> (Decision, Option<usize>) {
        let mut allowed = None;
        for (i, s) in self.statements.iter().enumerate() {
            if s.applies(req, &self.version) {
                match s.effect {
                    Effect::Deny => return (Decision::ExplicitDeny, Some(i)),
                    Effect::Allow => allowed = allowed.or(Some(i)),
                }
            }
        }
        match allowed {
            Some(i) => (Decision::Allow, Some(i)),
            None => (Decision::ImplicitDeny, None),
        }
    }

    /// A statement as people name it: `Sid "X" (statement 2)` or `statement 2` (1-based).
    pub fn label(&self, i: usize) -> String {
        match self.statements.get(i).and_then(|s| s.sid.as_deref()) {
            Some(sid) => format!("Sid \"{sid}\" (statement {})", i + 1),
            None => format!("statement {}", i + 1),
        }
    }
}

// --- matching -----------------------------------------------------------------------------------

/// Glob match with `*` (any run) and `?` (one character).
pub fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (pattern.to_lowercase().chars().collect(), text.to_lowercase().chars().collect())
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ti < t.len() {
        // `*` first: a `*` in the pattern is always a wildcard, even facing a literal `*` in the
        // text (found by fuzzing: "*?" failed to match "*ab", so a Deny on `.../*x` could miss
        // keys containing `*`).
        if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Substitute policy variables (`${key}`, `${*}` → `*`, `${?}` → `?`, `${$}` → `$`) with the
/// request's values; an unknown variable makes the pattern match nothing (AWS), signalled by
/// `None`. Version 2008-10-17 policies have no variables.
fn substitute(pattern: &str, req: &Request, version: &str, escape_wildcards: bool) -> Option<String> {
    if version != "2012-10-17" || !pattern.contains("${") {
        return Some(pattern.to_owned());
    }
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}')?;
        let name = &after[..end];
        match name {
            "*" | "?" | "$" => out.push_str(name),
            _ => {
                let v = req.get(name).and_then(|v| v.first())?;
                if escape_wildcards && (v.contains('*') || v.contains('?')) {
                    // A value's own wildcard characters must not widen the pattern.
                    return None;
                }
                out.push_str(v);
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn principal_matches(p: &Principals, req: &Request) -> bool {
    match p {
        Principals::Any => true,
        Principals::Listed(list) => list.iter().any(|(kind, v)| {
            (kind == "AWS" && v == "*") || req.principals.iter().any(|id| id == v || glob(v, id, false))
        }),
    }
}

fn parse_date(s: &str) -> Option<i128> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(d) = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")) {
        return Some(d.midnight().assume_utc().unix_timestamp_nanos());
    }
    s.parse::<i64>().ok().map(|secs| secs as i128 * 1_000_000_000)
}

fn ip_in(value: &str, cidr: &str) -> bool {
    let Ok(ip) = value.parse::<IpAddr>() else { return false };
    if let Ok(net) = cidr.parse::<ipnet::IpNet>() {
        return net.contains(&ip);
    }
    cidr.parse::<IpAddr>().is_ok_and(|c| c == ip)
}

/// One request value against one policy value.
fn value_matches(op: Op, have: &str, want: &str) -> bool {
    use Op::*;
    let num = |s: &str| s.parse::<f64>().ok();
    match op {
        StringEquals | StringNotEquals => have == want,
        StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => have.to_lowercase() == want.to_lowercase(),
        StringLike | StringNotLike => glob(want, have, false),
        ArnEquals | ArnNotEquals => have == want,
        ArnLike | ArnNotLike => glob(want, have, false),
        NumericEquals | NumericNotEquals => num(have).zip(num(want)).is_some_and(|(a, b)| a == b),
        NumericLessThan => num(have).zip(num(want)).is_some_and(|(a, b)| a < b),
        NumericLessThanEquals => num(have).zip(num(want)).is_some_and(|(a, b)| a <= b),
        NumericGreaterThan => num(have).zip(num(want)).is_some_and(|(a, b)| a > b),
        NumericGreaterThanEquals => num(have).zip(num(want)).is_some_and(|(a, b)| a >= b),
        DateEquals | DateNotEquals => parse_date(have).zip(parse_date(want)).is_some_and(|(a, b)| a == b),
        DateLessThan => parse_date(have).zip(parse_date(want)).is_some_and(|(a, b)| a < b),
        DateLessThanEquals => parse_date(have).zip(parse_date(want)).is_some_and(|(a, b)| a <= b),
        DateGreaterThan => parse_date(have).zip(parse_date(want)).is_some_and(|(a, b)| a > b),
        DateGreaterThanEquals => parse_date(have).zip(parse_date(want)).is_some_and(|(a, b)| a >= b),
        Bool => have.eq_ignore_ascii_case(want),
        IpAddress | NotIpAddress => ip_in(have, want),
        Null => unreachable!("Null is decided on presence"),
    }
}

impl Condition {
    fn holds(&self, req: &Request, version: &str) -> bool {
        let present = req.get(&self.key).filter(|v| !v.is_empty());
        if self.op == Op::Null {
            // "true": the key must be absent; "false": present.
            let want_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            return want_absent == present.is_none();
        }
        let wants: Vec<String> = self
            .values
            .iter()
            .filter_map(|w| substitute(w, req, version, matches!(self.op, Op::StringLike | Op::StringNotLike)))
            .collect();
        let Some(haves) = present else {
            return match self.qualifier {
                Qualifier::ForAllValues => true, // vacuously: every one of no values matches
                Qualifier::ForAnyValue => false,
                Qualifier::Single => self.if_exists || self.op.negated(),
            };
        };
        let any = |have: &str| wants.iter().any(|w| value_matches(self.op, have, w));
        let positive = |have: &str| if self.op.negated() { !any(have) } else { any(have) };
        match self.qualifier {
            Qualifier::ForAllValues => haves.iter().all(|h| positive(h)),
            Qualifier::ForAnyValue => haves.iter().any(|h| positive(h)),
            // A single-valued key: its (first) value.
            Qualifier::Single => positive(&haves[0]),
        }
    }
}

impl Statement {
    fn applies(&self, req: &Request, version: &str) -> bool {
        if let Some(p) = &self.principal {
            if !principal_matches(p, req) {
                return false;
            }
        }
        if let Some(p) = &self.not_principal {
            if principal_matches(p, req) {
                return false;
            }
        }
        let action_hit = |list: &Vec<String>| list.iter().any(|a| glob(a, &req.action, true));
        match (&self.action, &self.not_action) {
            (Some(a), _) if !action_hit(a) => return false,
            (_, Some(na)) if action_hit(na) => return false,
            _ => {}
        }
        let resource_hit = |list: &Vec<String>| {
            list.iter().any(|r| substitute(r, req, version, true).is_some_and(|r| glob(&r, &req.resource, false)))
        };
        match (&self.resource, &self.not_resource) {
            (Some(r), _) if !resource_hit(r) => return false,
            (_, Some(nr)) if resource_hit(nr) => return false,
            _ => {}
        }
        self.conditions.iter().all(|c| c.holds(req, version))
    }
}

#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod tests;
