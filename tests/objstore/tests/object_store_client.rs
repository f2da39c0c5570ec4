//! The object_store crate (Apache Arrow's Rust object-store client, as used by DataFusion,
//! Polars and delta-rs) against the real `strait` binary over loopback, running object_store's
//! own backend conformance suite (`object_store::integration`).

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::integration::*;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const ACCESS_KEY: &str = "STRAITOBJSTOREKEY01";
const SECRET_KEY: &str = "objstore/secret+key/0123456789abcdefghij";

struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn strait_bin() -> PathBuf {
    if let Ok(p) = std::env::var("STRAIT_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<this test> → target/<profile>/strait
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(|d| d.parent()).expect("target dir").join("strait")
}

fn start(name: &str, bucket: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("strait-objstore-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // A bucket is a directory: object_store cannot create buckets, the file system can.
    std::fs::create_dir_all(dir.join("root").join(bucket)).unwrap();
    let bin = strait_bin();
    assert!(bin.exists(), "build the gateway first: {} is missing", bin.display());
    let mut child = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(dir.join("root"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("STRAIT_ROOT_ACCESS_KEY", ACCESS_KEY)
        .env("STRAIT_ROOT_SECRET_KEY", SECRET_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start strait");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = lines.next().expect("strait exited before listening").unwrap();
        if let Some(addr) = line.strip_prefix("strait: listening on http://") {
            break addr.rsplit(':').next().unwrap().trim().parse().unwrap();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, port, dir }
}

fn client(s: &Server, bucket: &str) -> AmazonS3 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{}", s.port))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .with_virtual_hosted_style_request(false)
        // Create-only copies through CompleteMultipartUpload with If-None-Match: *.
        .with_copy_if_not_exists(object_store::aws::S3CopyIfNotExists::Multipart)
        .build()
        .expect("object_store client")
}

/// Where the result row of conformance/MATRIX.md is written (`$OBJECT_STORE_REPORT`, default
/// `<target>/conformance/object_store.json`); removed first so a failed run leaves none.
fn report_path() -> PathBuf {
    if let Ok(p) = std::env::var("OBJECT_STORE_REPORT") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors().nth(3).expect("target dir").join("conformance").join("object_store.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_conformance_suite() {
    let report = report_path();
    let _ = std::fs::remove_file(&report);
    let s = start("suite", "objstore");
    let store = client(&s, "objstore");
    put_get_delete_list(&store).await;
    put_get_attributes(&store).await;
    get_opts(&store).await;
    put_opts(&store, true).await;
    list_uses_directories_correctly(&store).await;
    list_with_delimiter(&store).await;
    rename_and_copy(&store).await;
    copy_rename_nonexistent_object(&store).await;
    copy_if_not_exists(&store).await;
    stream_get(&store).await;
    multipart(&store, &store).await;
    multipart_out_of_order(&store).await;
    multipart_race_condition(&store, true).await;
    list_with_offset_exclusivity(&store).await;
    // Reached only when every step above passed (each panics on failure).
    let scenarios = ["put", "get", "list", "delete", "copy", "conditional", "multipart"];
    let body = scenarios.iter().map(|k| format!("\"{k}\": \"passed\"")).collect::<Vec<_>>().join(", ");
    let doc =
        format!("{{\"client\": \"object_store\", \"version\": \"0.14\", \"targets\": {{\"strait\": {{{body}}}}}}}\n");
    std::fs::create_dir_all(report.parent().unwrap()).unwrap();
    std::fs::write(&report, doc).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_sees_files_written_on_the_file_system() {
    use futures::TryStreamExt;
    use object_store::{path::Path, ObjectStore, ObjectStoreExt};
    let s = start("posix", "hpc");
    std::fs::create_dir_all(s.dir.join("root/hpc/run1")).unwrap();
    std::fs::write(s.dir.join("root/hpc/run1/out.dat"), b"written by a job").unwrap();
    let store = client(&s, "hpc");
    let listed: Vec<_> = store.list(Some(&Path::from("run1"))).try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].location.as_ref(), "run1/out.dat");
    assert_eq!(listed[0].size, 16);
    let got = store.get(&Path::from("run1/out.dat")).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], b"written by a job");
    store.put(&Path::from("run1/back.dat"), bytes::Bytes::from_static(b"from S3").into()).await.unwrap();
    assert_eq!(std::fs::read(s.dir.join("root/hpc/run1/back.dat")).unwrap(), b"from S3");
}
