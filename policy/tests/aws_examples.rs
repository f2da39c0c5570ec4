//! The examples of the AWS documentation ("Examples of Amazon S3 bucket policies", "IAM
//! identity-based policy examples", "IAM JSON policy elements"), as a table: each policy as
//! published (account ids and bucket names kept as in the examples), then requests with the
//! decision AWS documents for them.

use strait_policy::{Decision, Policy, Request};
use Decision::{Allow, ExplicitDeny as Deny, ImplicitDeny as None_};

/// (action, resource, principal ARN or "" for anonymous, condition keys, expected decision)
type Probe = (&'static str, &'static str, &'static str, &'static [(&'static str, &'static str)], Decision);

struct Case {
    /// Where the example is from.
    example: &'static str,
    policy: &'static str,
    requests: &'static [Probe],
}

const CASES: &[Case] = &[
    Case {
        example: "S3 bucket policy examples: granting read-only permission to public anonymous users",
        policy: r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow","Principal":"*",
            "Action":["s3:GetObject","s3:GetObjectVersion"],"Resource":["arn:aws:s3:::DOC-EXAMPLE-BUCKET/*"]}]}"#,
        requests: &[
            ("s3:GetObject", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/photo.jpg", "", &[], Allow),
            ("s3:PutObject", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/photo.jpg", "", &[], None_),
            ("s3:ListBucket", "arn:aws:s3:::DOC-EXAMPLE-BUCKET", "", &[], None_),
            ("s3:GetObject", "arn:aws:s3:::DOC-EXAMPLE-BUCKET2/photo.jpg", "", &[], None_),
        ],
    },
    Case {
        example: "S3 bucket policy examples: managing access based on specific IP addresses",
        policy: r#"{"Id":"SourceIP","Version":"2012-10-17","Statement":[{"Sid":"SourceIP","Effect":"Deny","Principal":"*",
            "Action":"s3:*","Resource":["arn:aws:s3:::DOC-EXAMPLE-BUCKET","arn:aws:s3:::DOC-EXAMPLE-BUCKET/*"],
            "Condition":{"NotIpAddress":{"aws:SourceIp":["192.0.2.0/24","203.0.113.0/24"]}}}]}"#,
        requests: &[
            (
                "s3:GetObject",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a",
                "arn:aws:iam::111122223333:user/alice",
                &[("aws:SourceIp", "198.51.100.7")],
                Deny,
            ),
            (
                "s3:GetObject",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a",
                "arn:aws:iam::111122223333:user/alice",
                &[("aws:SourceIp", "192.0.2.77")],
                None_,
            ),
            ("s3:ListBucket", "arn:aws:s3:::DOC-EXAMPLE-BUCKET", "", &[("aws:SourceIp", "203.0.113.1")], None_),
        ],
    },
    Case {
        example: "S3 bucket policy examples: allowing IPv4 and IPv6 addresses",
        policy: r#"{"Id":"PolicyId2","Version":"2012-10-17","Statement":[{"Sid":"AllowIPmix","Effect":"Allow","Principal":"*",
            "Action":"s3:*","Resource":["arn:aws:s3:::DOC-EXAMPLE-BUCKET","arn:aws:s3:::DOC-EXAMPLE-BUCKET/*"],
            "Condition":{"IpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:DB8:1234:5678::/64"]},
                         "NotIpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:DB8:1234:5678:ABCD::/80"]}}}]}"#,
        requests: &[
            (
                "s3:GetObject",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a",
                "",
                &[("aws:SourceIp", "2001:db8:1234:5678::1")],
                Allow,
            ),
            (
                "s3:GetObject",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a",
                "",
                &[("aws:SourceIp", "2001:db8:1234:5678:abcd::1")],
                None_,
            ),
            ("s3:GetObject", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a", "", &[("aws:SourceIp", "192.0.2.9")], Allow),
        ],
    },
    Case {
        example: "S3 bucket policy examples: requiring HTTPS (aws:SecureTransport)",
        policy: r#"{"Version":"2012-10-17","Statement":[{"Sid":"RestrictToTLSRequestsOnly","Action":"s3:*","Effect":"Deny",
            "Resource":["arn:aws:s3:::DOC-EXAMPLE-BUCKET","arn:aws:s3:::DOC-EXAMPLE-BUCKET/*"],
            "Condition":{"Bool":{"aws:SecureTransport":"false"}},"Principal":"*"}]}"#,
        requests: &[
            (
                "s3:GetObject",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a",
                "arn:aws:iam::111122223333:user/alice",
                &[("aws:SecureTransport", "false")],
                Deny,
            ),
            (
                "s3:GetObject",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a",
                "arn:aws:iam::111122223333:user/alice",
                &[("aws:SecureTransport", "true")],
                None_,
            ),
        ],
    },
    Case {
        example: "S3 bucket policy examples: granting permissions to multiple accounts with added conditions",
        policy: r#"{"Version":"2012-10-17","Statement":[{"Sid":"AddCannedAcl","Effect":"Allow",
            "Principal":{"AWS":["arn:aws:iam::111122223333:root","arn:aws:iam::444455556666:root"]},
            "Action":["s3:PutObject","s3:PutObjectAcl"],"Resource":"arn:aws:s3:::DOC-EXAMPLE-BUCKET/*",
            "Condition":{"StringEquals":{"s3:x-amz-acl":["public-read"]}}}]}"#,
        requests: &[
            (
                "s3:PutObject",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a",
                "arn:aws:iam::444455556666:root",
                &[("s3:x-amz-acl", "public-read")],
                Allow,
            ),
            (
                "s3:PutObject",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a",
                "arn:aws:iam::444455556666:root",
                &[("s3:x-amz-acl", "private")],
                None_,
            ),
            (
                "s3:PutObject",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a",
                "arn:aws:iam::777788889999:root",
                &[("s3:x-amz-acl", "public-read")],
                None_,
            ),
        ],
    },
    Case {
        example: "IAM identity-based policy examples: allow access to a user's home folder in S3 (${aws:username})",
        policy: r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"AllowListingOfUserFolder","Action":["s3:ListBucket"],"Effect":"Allow","Resource":["arn:aws:s3:::DOC-EXAMPLE-BUCKET"],
             "Condition":{"StringLike":{"s3:prefix":["","home/","home/${aws:username}/*"]}}},
            {"Sid":"AllowAllS3ActionsInUserFolder","Effect":"Allow","Action":["s3:*"],
             "Resource":["arn:aws:s3:::DOC-EXAMPLE-BUCKET/home/${aws:username}/*"]}]}"#,
        requests: &[
            (
                "s3:ListBucket",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET",
                "arn:aws:iam::111122223333:user/alice",
                &[("aws:username", "alice"), ("s3:prefix", "home/alice/")],
                Allow,
            ),
            (
                "s3:ListBucket",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET",
                "arn:aws:iam::111122223333:user/alice",
                &[("aws:username", "alice"), ("s3:prefix", "home/bob/")],
                None_,
            ),
            (
                "s3:ListBucket",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET",
                "arn:aws:iam::111122223333:user/alice",
                &[("aws:username", "alice"), ("s3:prefix", "")],
                Allow,
            ),
            (
                "s3:PutObject",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET/home/alice/notes.txt",
                "arn:aws:iam::111122223333:user/alice",
                &[("aws:username", "alice")],
                Allow,
            ),
            (
                "s3:GetObject",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET/home/bob/notes.txt",
                "arn:aws:iam::111122223333:user/alice",
                &[("aws:username", "alice")],
                None_,
            ),
        ],
    },
    Case {
        example: "IAM JSON policy elements: NotAction with Deny (allow only S3 outside, deny everything else)",
        policy: r#"{"Version":"2012-10-17","Statement":[{"Sid":"DenyAllUsersNotUsingMFA","Effect":"Deny","NotAction":"iam:*",
            "Resource":"*","Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}}]}"#,
        requests: &[
            ("s3:GetObject", "arn:aws:s3:::b/k", "arn:aws:iam::111122223333:user/alice", &[], Deny),
            (
                "s3:GetObject",
                "arn:aws:s3:::b/k",
                "arn:aws:iam::111122223333:user/alice",
                &[("aws:MultiFactorAuthPresent", "true")],
                None_,
            ),
            ("iam:CreateUser", "arn:aws:iam::111122223333:user/x", "arn:aws:iam::111122223333:user/alice", &[], None_),
        ],
    },
    Case {
        example: "S3 bucket policy examples: restricting access by object tag (s3:ExistingObjectTag)",
        policy: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::DOC-EXAMPLE-BUCKET/*",
            "Condition":{"StringEquals":{"s3:ExistingObjectTag/environment":"production"}}}]}"#,
        requests: &[
            (
                "s3:GetObject",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a",
                "arn:aws:iam::111122223333:root",
                &[("s3:ExistingObjectTag/environment", "production")],
                Allow,
            ),
            (
                "s3:GetObject",
                "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a",
                "arn:aws:iam::111122223333:root",
                &[("s3:ExistingObjectTag/environment", "test")],
                None_,
            ),
            ("s3:GetObject", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a", "arn:aws:iam::111122223333:root", &[], None_),
        ],
    },
    Case {
        example: "IAM JSON policy elements: Condition with date (aws:CurrentTime) and ForAnyValue (aws:PrincipalTag)",
        policy: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*",
            "Condition":{"DateGreaterThan":{"aws:CurrentTime":"2020-04-01T00:00:00Z"},
                         "DateLessThan":{"aws:CurrentTime":"2030-06-30T23:59:59Z"},
                         "ForAnyValue:StringEquals":{"aws:PrincipalTag/project":["climate","vision"]}}}]}"#,
        requests: &[
            (
                "s3:GetObject",
                "arn:aws:s3:::b/k",
                "arn:aws:iam::111122223333:user/alice",
                &[("aws:CurrentTime", "2026-12-02T00:00:00Z"), ("aws:PrincipalTag/project", "climate")],
                Allow,
            ),
            (
                "s3:GetObject",
                "arn:aws:s3:::b/k",
                "arn:aws:iam::111122223333:user/alice",
                &[("aws:CurrentTime", "2031-01-01T00:00:00Z"), ("aws:PrincipalTag/project", "climate")],
                None_,
            ),
            (
                "s3:GetObject",
                "arn:aws:s3:::b/k",
                "arn:aws:iam::111122223333:user/alice",
                &[("aws:CurrentTime", "2026-12-02T00:00:00Z"), ("aws:PrincipalTag/project", "genomics")],
                None_,
            ),
        ],
    },
    Case {
        example: "S3 bucket policy examples: a policy on one bucket never grants another bucket whose name it prefixes",
        policy: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket",
            "Resource":"arn:aws:s3:::jack"}]}"#,
        requests: &[
            ("s3:ListBucket", "arn:aws:s3:::jack", "", &[], Allow),
            ("s3:ListBucket", "arn:aws:s3:::jackson", "", &[], None_),
            ("s3:ListBucket", "arn:aws:s3:::JACK", "", &[], None_),
        ],
    },
];

#[test]
fn aws_documentation_examples() {
    let mut failures = Vec::new();
    for case in CASES {
        let p = Policy::parse(case.policy).unwrap_or_else(|e| panic!("{}: {e}", case.example));
        for (action, resource, principal, ctx, want) in case.requests {
            let mut r = Request { action: (*action).into(), resource: (*resource).into(), ..Default::default() };
            if !principal.is_empty() {
                r.principals = vec![(*principal).into()];
                if let Some(acct) = principal.strip_prefix("arn:aws:iam::").and_then(|x| x.split(':').next()) {
                    r.principals.push(acct.into());
                }
            }
            for (k, v) in ctx.iter() {
                r = r.with(k, *v);
            }
            let got = p.evaluate(&r);
            if got != *want {
                failures.push(format!("{}: {action} {resource} {ctx:?}: got {got:?}, want {want:?}", case.example));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
