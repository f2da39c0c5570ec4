//! Evaluation as AWS documents it, case by case.

use super::*;

fn req(action: &str, resource: &str) -> Request {
    Request {
        principals: vec!["arn:aws:iam::111122223333:user/alice".into(), "111122223333".into()],
        action: action.into(),
        resource: resource.into(),
        ..Default::default()
    }
}

fn policy(statements: &str) -> Policy {
    Policy::parse(&format!(r#"{{"Version": "2012-10-17", "Statement": {statements}}}"#)).unwrap()
}

#[test]
fn explicit_deny_beats_allow_beats_implicit_deny() {
    let p = policy(
        r#"[{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::data/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::data/keep/*"}]"#,
    );
    assert_eq!(p.evaluate(&req("s3:GetObject", "arn:aws:s3:::data/a")), Decision::Allow);
    assert_eq!(p.evaluate(&req("s3:DeleteObject", "arn:aws:s3:::data/keep/x")), Decision::ExplicitDeny);
    assert_eq!(p.evaluate(&req("s3:DeleteObject", "arn:aws:s3:::data/other")), Decision::Allow);
    assert_eq!(p.evaluate(&req("s3:GetObject", "arn:aws:s3:::elsewhere/a")), Decision::ImplicitDeny);
    assert_eq!(Decision::Allow.combine(Decision::ExplicitDeny), Decision::ExplicitDeny);
    assert_eq!(Decision::ImplicitDeny.combine(Decision::Allow), Decision::Allow);
}

#[test]
fn resources_match_exactly_unless_wildcarded() {
    let p =
        policy(r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::jack"}"#);
    assert_eq!(p.evaluate(&req("s3:ListBucket", "arn:aws:s3:::jack")), Decision::Allow);
    assert_eq!(p.evaluate(&req("s3:ListBucket", "arn:aws:s3:::jackson")), Decision::ImplicitDeny);
    let p =
        policy(r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::jack/*"}"#);
    assert_eq!(p.evaluate(&req("s3:GetObject", "arn:aws:s3:::jack/x/y")), Decision::Allow);
    assert_eq!(p.evaluate(&req("s3:GetObject", "arn:aws:s3:::jackson/x")), Decision::ImplicitDeny);
    // Resources are case-sensitive, actions are not.
    assert_eq!(p.evaluate(&req("S3:getobject", "arn:aws:s3:::jack/x")), Decision::Allow);
    assert_eq!(p.evaluate(&req("s3:GetObject", "arn:aws:s3:::Jack/x")), Decision::ImplicitDeny);
    let p =
        policy(r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/file?.txt"}"#);
    assert_eq!(p.evaluate(&req("s3:GetObjectTagging", "arn:aws:s3:::b/file1.txt")), Decision::Allow);
    assert_eq!(p.evaluate(&req("s3:GetObject", "arn:aws:s3:::b/file10.txt")), Decision::ImplicitDeny);
    assert_eq!(p.evaluate(&req("s3:PutObject", "arn:aws:s3:::b/file1.txt")), Decision::ImplicitDeny);
}

#[test]
fn not_action_not_resource_not_principal() {
    let p = policy(
        r#"{"Effect": "Deny", "Principal": "*", "NotAction": ["s3:Get*", "s3:List*"], "Resource": "arn:aws:s3:::ro/*"}"#,
    );
    assert_eq!(p.evaluate(&req("s3:PutObject", "arn:aws:s3:::ro/a")), Decision::ExplicitDeny);
    assert_eq!(p.evaluate(&req("s3:GetObject", "arn:aws:s3:::ro/a")), Decision::ImplicitDeny);
    let p =
        policy(r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"}"#);
    assert_eq!(p.evaluate(&req("s3:GetObject", "arn:aws:s3:::public/a")), Decision::Allow);
    assert_eq!(p.evaluate(&req("s3:GetObject", "arn:aws:s3:::secret/a")), Decision::ImplicitDeny);
    let p = policy(
        r#"{"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "s3:*", "Resource": "*"}"#,
    );
    assert_eq!(p.evaluate(&req("s3:GetObject", "arn:aws:s3:::b/a")), Decision::ImplicitDeny);
    let mut bob = req("s3:GetObject", "arn:aws:s3:::b/a");
    bob.principals = vec!["arn:aws:iam::111122223333:user/bob".into()];
    assert_eq!(p.evaluate(&bob), Decision::ExplicitDeny);
}

#[test]
fn principals() {
    let p = policy(
        r#"{"Effect": "Allow", "Principal": {"AWS": ["111122223333", "arn:aws:iam::444455556666:user/*"]},
            "Action": "s3:GetObject", "Resource": "*"}"#,
    );
    assert_eq!(p.evaluate(&req("s3:GetObject", "arn:aws:s3:::b/a")), Decision::Allow);
    let mut other = req("s3:GetObject", "arn:aws:s3:::b/a");
    other.principals = vec!["arn:aws:iam::444455556666:user/carol".into(), "444455556666".into()];
    assert_eq!(p.evaluate(&other), Decision::Allow);
    other.principals = vec!["arn:aws:iam::999999999999:user/eve".into()];
    assert_eq!(p.evaluate(&other), Decision::ImplicitDeny);
    let anon = Request { action: "s3:GetObject".into(), resource: "arn:aws:s3:::b/a".into(), ..Default::default() };
    assert_eq!(p.evaluate(&anon), Decision::ImplicitDeny);
    let public = policy(r#"{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": "*"}"#);
    assert_eq!(public.evaluate(&anon), Decision::Allow);
}

#[test]
fn policy_variables() {
    let p = policy(
        r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::home/${aws:username}/*"}"#,
    );
    let alice = req("s3:PutObject", "arn:aws:s3:::home/alice/notes").with("aws:username", "alice");
    assert_eq!(p.evaluate(&alice), Decision::Allow);
    let snoop = req("s3:GetObject", "arn:aws:s3:::home/bob/notes").with("aws:username", "alice");
    assert_eq!(p.evaluate(&snoop), Decision::ImplicitDeny);
    // No such key in the request: the resource matches nothing.
    assert_eq!(p.evaluate(&req("s3:GetObject", "arn:aws:s3:::home/alice/notes")), Decision::ImplicitDeny);
    // A value's own wildcard must not widen the pattern.
    let star = req("s3:GetObject", "arn:aws:s3:::home/bob/notes").with("aws:username", "*");
    assert_eq!(p.evaluate(&star), Decision::ImplicitDeny);
    // Version 2008-10-17 has no variables: `${aws:username}` is literal text.
    let old = Policy::parse(
        r#"{"Version": "2008-10-17", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*",
            "Resource": "arn:aws:s3:::home/${aws:username}/*"}}"#,
    )
    .unwrap();
    assert_eq!(old.evaluate(&alice), Decision::ImplicitDeny);
    let list = policy(
        r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::home",
            "Condition": {"StringLike": {"s3:prefix": ["${aws:username}/*", ""]}}}"#,
    );
    let ok = req("s3:ListBucket", "arn:aws:s3:::home").with("aws:username", "alice").with("s3:prefix", "alice/x");
    assert_eq!(list.evaluate(&ok), Decision::Allow);
    let no = req("s3:ListBucket", "arn:aws:s3:::home").with("aws:username", "alice").with("s3:prefix", "bob/");
    assert_eq!(list.evaluate(&no), Decision::ImplicitDeny);
}

fn cond(c: &str) -> Policy {
    policy(&format!(r#"{{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*", "Condition": {c}}}"#))
}

fn allowed(p: &Policy, r: Request) -> bool {
    p.evaluate(&r) == Decision::Allow
}

fn any() -> Request {
    req("s3:GetObject", "arn:aws:s3:::b/k")
}

#[test]
fn string_conditions_and_absent_keys() {
    let eq = cond(r#"{"StringEquals": {"aws:username": ["alice", "bob"]}}"#);
    assert!(allowed(&eq, any().with("aws:username", "bob")));
    assert!(!allowed(&eq, any().with("aws:username", "Bob")));
    assert!(!allowed(&eq, any())); // absent: a positive operator fails
    let ne = cond(r#"{"StringNotEquals": {"aws:username": "alice"}}"#);
    assert!(allowed(&ne, any().with("aws:username", "bob")));
    assert!(!allowed(&ne, any().with("aws:username", "alice")));
    assert!(allowed(&ne, any())); // absent: a negated operator holds
    let ic = cond(r#"{"StringEqualsIgnoreCase": {"aws:username": "ALICE"}}"#);
    assert!(allowed(&ic, any().with("aws:username", "alice")));
    let like = cond(r#"{"StringLike": {"s3:prefix": "home/*"}}"#);
    assert!(allowed(&like, any().with("s3:prefix", "home/alice")));
    assert!(!allowed(&like, any().with("s3:prefix", "etc/")));
    let ie = cond(r#"{"StringEqualsIfExists": {"s3:x-amz-storage-class": "STANDARD"}}"#);
    assert!(allowed(&ie, any()));
    assert!(allowed(&ie, any().with("s3:x-amz-storage-class", "STANDARD")));
    assert!(!allowed(&ie, any().with("s3:x-amz-storage-class", "GLACIER")));
    // Condition key names are case-insensitive.
    let upper = cond(r#"{"StringEquals": {"AWS:UserName": "alice"}}"#);
    assert!(allowed(&upper, any().with("aws:username", "alice")));
}

#[test]
fn numeric_date_bool_ip_null() {
    let n = cond(r#"{"NumericLessThanEquals": {"s3:max-keys": "100"}}"#);
    assert!(allowed(&n, any().with("s3:max-keys", "100")));
    assert!(!allowed(&n, any().with("s3:max-keys", "1000")));
    assert!(!allowed(&n, any().with("s3:max-keys", "lots")));
    let d = cond(r#"{"DateLessThan": {"aws:CurrentTime": "2027-01-01T00:00:00Z"}}"#);
    assert!(allowed(&d, any().with("aws:CurrentTime", "2026-12-01T18:00:00Z")));
    assert!(!allowed(&d, any().with("aws:CurrentTime", "2027-06-01T00:00:00Z")));
    assert!(allowed(&d, any().with("aws:CurrentTime", "1796000000"))); // epoch seconds (2026-11)
    let b = cond(r#"{"Bool": {"aws:SecureTransport": "false"}}"#);
    assert!(allowed(&b, any().with("aws:SecureTransport", "false")));
    assert!(!allowed(&b, any().with("aws:SecureTransport", "true")));
    let b = cond(r#"{"Bool": {"aws:SecureTransport": false}}"#); // JSON booleans too
    assert!(allowed(&b, any().with("aws:SecureTransport", "false")));
    let ip = cond(r#"{"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]}}"#);
    assert!(allowed(&ip, any().with("aws:SourceIp", "10.1.2.3")));
    assert!(allowed(&ip, any().with("aws:SourceIp", "2001:db8::1")));
    assert!(allowed(&ip, any().with("aws:SourceIp", "192.0.2.7")));
    assert!(!allowed(&ip, any().with("aws:SourceIp", "192.0.2.8")));
    let notip = cond(r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#);
    assert!(allowed(&notip, any().with("aws:SourceIp", "172.16.0.1")));
    assert!(!allowed(&notip, any().with("aws:SourceIp", "10.0.0.1")));
    let null = cond(r#"{"Null": {"s3:x-amz-server-side-encryption": "true"}}"#);
    assert!(allowed(&null, any()));
    assert!(!allowed(&null, any().with("s3:x-amz-server-side-encryption", "AES256")));
    let present = cond(r#"{"Null": {"aws:PrincipalTag/team": "false"}}"#);
    assert!(allowed(&present, any().with("aws:PrincipalTag/team", "ml")));
    assert!(!allowed(&present, any()));
}

#[test]
fn set_qualifiers() {
    let all = cond(r#"{"ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["project", "owner"]}}"#);
    let tags = |ks: &[&str]| ks.iter().fold(any(), |r, k| r.with("s3:RequestObjectTagKeys", *k));
    assert!(allowed(&all, tags(&["project"])));
    assert!(allowed(&all, tags(&["project", "owner"])));
    assert!(!allowed(&all, tags(&["project", "secret"])));
    assert!(allowed(&all, any())); // no values: vacuously true (AWS's documented pitfall)
    let some = cond(r#"{"ForAnyValue:StringEquals": {"s3:RequestObjectTagKeys": ["project"]}}"#);
    assert!(allowed(&some, tags(&["x", "project"])));
    assert!(!allowed(&some, tags(&["x"])));
    assert!(!allowed(&some, any()));
    let tag = cond(r#"{"StringEquals": {"s3:ExistingObjectTag/classification": "public"}}"#);
    assert!(allowed(&tag, any().with("s3:ExistingObjectTag/classification", "public")));
    assert!(!allowed(&tag, any().with("s3:ExistingObjectTag/classification", "secret")));
}

#[test]
fn all_conditions_must_hold() {
    let p = cond(
        r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}, "Bool": {"aws:SecureTransport": "true"},
            "StringEquals": {"aws:username": "alice", "aws:userid": "AIDA1"}}"#,
    );
    let ok = any()
        .with("aws:SourceIp", "10.0.0.1")
        .with("aws:SecureTransport", "true")
        .with("aws:username", "alice")
        .with("aws:userid", "AIDA1");
    assert!(allowed(&p, ok.clone()));
    let mut bad = ok;
    bad.context.insert("aws:userid".into(), vec!["AIDA2".into()]);
    assert!(!allowed(&p, bad));
}

#[test]
fn parse_errors_name_the_field() {
    let e = |s: &str| Policy::parse(s).unwrap_err();
    assert!(e("not json").contains("not JSON"));
    assert!(e(r#"{"Statement": [{"Effect": "Permit", "Action": "s3:*", "Resource": "*"}]}"#)
        .contains("Statement[0].Effect"));
    assert!(e(r#"{"Statement": [{"Effect": "Allow", "Resource": "*"}]}"#).contains("Action"));
    assert!(e(r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "NotAction": "s3:Get*", "Resource": "*"}]}"#)
        .contains("exactly one of Action and NotAction"));
    assert!(e(r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*",
                 "Condition": {"StringSorta": {"k": "v"}}}]}"#)
    .contains("unknown operator \"StringSorta\""));
    assert!(e(r#"{"Version": "2020-01-01", "Statement": []}"#).contains("Version"));
    assert!(e(r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Colour": 1}]}"#)
        .contains("Statement[0].Colour"));
    assert!(e(
        r#"{"Statement": [{"Effect": "Allow", "Principal": {"Robot": "x"}, "Action": "s3:*", "Resource": "*"}]}"#
    )
    .contains("unknown principal type"));
}

#[test]
fn glob_edge_cases() {
    assert!(glob("*", "", false));
    assert!(glob("a*b*c", "aXXbYYc", false));
    assert!(!glob("a*b*c", "aXXbYY", false));
    assert!(glob("a?c", "abc", false) && !glob("a?c", "ac", false));
    assert!(glob("ünï/*", "ünï/x", false));
    assert!(glob("**", "anything", false));
    // Found by fuzzing: a pattern `*` facing a literal `*` in the text is still a wildcard.
    assert!(glob("*?", "*ab", false));
    assert!(glob("arn:aws:s3:::b/*secret", "arn:aws:s3:::b/*x-secret", false));
}

#[test]
fn deny_applies_to_keys_containing_wildcard_characters() {
    let p = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject",
            "Resource":"arn:aws:s3:::b/*.key"}]}"#,
    )
    .unwrap();
    let req =
        Request { action: "s3:GetObject".into(), resource: "arn:aws:s3:::b/*weird*.key".into(), ..Default::default() };
    assert_eq!(p.evaluate(&req), Decision::ExplicitDeny);
}

#[test]
fn explain_names_the_deciding_statement() {
    let p = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
            {"Sid":"NoSecrets","Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/secret/*"}]}"#,
    )
    .unwrap();
    let req = |r: &str| Request { action: "s3:GetObject".into(), resource: r.into(), ..Default::default() };
    assert_eq!(p.explain(&req("arn:aws:s3:::b/x")), (Decision::Allow, Some(0)));
    assert_eq!(p.explain(&req("arn:aws:s3:::b/secret/y")), (Decision::ExplicitDeny, Some(1)));
    assert_eq!(p.explain(&req("arn:aws:s3:::c/x")), (Decision::ImplicitDeny, None));
    assert_eq!(p.label(1), "Sid \"NoSecrets\" (statement 2)");
    assert_eq!(p.label(0), "statement 1");
}
