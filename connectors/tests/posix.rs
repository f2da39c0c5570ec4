//! Connector conformance on a real directory tree: mapping, publish, listing order, conflicts,
//! symlinks and special files, pruning, staging cleanup.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use strait_connectors::list::{list, ListItem, ListQuery};
use strait_connectors::{ConnectorError, ObjectKey, ObjectMeta, PosixStore, PublishMode, SideState};

#[derive(Default)]
struct RecJournal(Mutex<Vec<PathBuf>>, Mutex<std::collections::HashMap<String, Vec<u8>>>);
impl SideState for RecJournal {
    fn record(&self, p: &Path) -> strait_connectors::Result<()> {
        self.0.lock().unwrap().push(p.to_owned());
        Ok(())
    }
    fn forget(&self, p: &Path) {
        self.0.lock().unwrap().retain(|x| x != p);
    }
    fn put_meta(&self, inode: &str, record: &[u8]) -> strait_connectors::Result<()> {
        self.1.lock().unwrap().insert(inode.to_owned(), record.to_vec());
        Ok(())
    }
    fn get_meta(&self, inode: &str) -> strait_connectors::Result<Option<Vec<u8>>> {
        Ok(self.1.lock().unwrap().get(inode).cloned())
    }
    fn delete_meta(&self, inode: &str) {
        self.1.lock().unwrap().remove(inode);
    }
}

struct Fixture {
    dir: PathBuf,
    store: PosixStore,
    journal: Arc<RecJournal>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A store with named staging files (`PosixStore::open`'s default).
fn fixture(name: &str) -> Fixture {
    fixture_staging(name, false)
}

/// A store staging unnamed (`O_TMPFILE`) files when `anonymous`.
fn fixture_staging(name: &str, anonymous: bool) -> Fixture {
    let dir = std::env::temp_dir().join(format!("strait-conn-{name}-{anonymous}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let journal = Arc::new(RecJournal::default());
    let store = PosixStore::open(&dir.join("root"), journal.clone()).unwrap();
    assert_eq!(store.set_anonymous_staging(anonymous), anonymous);
    store.create_bucket("bkt", "0", None).unwrap();
    Fixture { dir, store, journal }
}

fn put(f: &Fixture, key: &str, body: &[u8], mode: &PublishMode) -> strait_connectors::Result<ObjectMeta> {
    let b = f.store.bucket("bkt")?;
    let k = ObjectKey::parse(key)?;
    if k.is_dir_marker() {
        return b.put_marker(
            &k,
            ObjectMeta { etag: "d41d8cd98f00b204e9800998ecf8427e".into(), ..Default::default() },
            mode,
        );
    }
    let mut st = b.stage(&k)?;
    st.file().write_all(body).unwrap();
    st.publish(ObjectMeta { etag: format!("etag-{}", body.len()), ..Default::default() }, mode)
}

fn keys(f: &Fixture, prefix: &str, delimiter: Option<&str>, after: Option<&str>, max: usize) -> (Vec<String>, bool) {
    let b = f.store.bucket("bkt").unwrap();
    let p = list(&b, &ListQuery { prefix, delimiter, after, max_keys: max }).unwrap();
    let ks = p
        .items
        .iter()
        .map(|i| match i {
            ListItem::Object { key, .. } => key.clone(),
            ListItem::Prefix(p) => format!("P:{p}"),
        })
        .collect();
    (ks, p.truncated)
}

fn bucket_path(f: &Fixture) -> PathBuf {
    f.dir.join("root").join("bkt")
}

#[test]
fn listing_is_in_s3_byte_order_across_directories() {
    let f = fixture("order");
    for k in ["obj1", "obj/x", "obj+", "a/b/c", "a/b/", "a/ba", "b", "obj/y/z"] {
        put(&f, k, b"data", &PublishMode::Overwrite).unwrap();
    }
    let (all, trunc) = keys(&f, "", None, None, 1000);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "listing must be byte-ordered");
    assert_eq!(all, ["a/b/", "a/b/c", "a/ba", "b", "obj+", "obj/x", "obj/y/z", "obj1"]);
    assert!(!trunc);
    // Paging with an exclusive start key reproduces the same sequence.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, trunc) = keys(&f, "", None, after.as_deref(), 3);
        paged.extend(page.clone());
        if !trunc {
            break;
        }
        after = page.last().cloned();
    }
    assert_eq!(paged, all);
}

#[test]
fn delimiter_prefixes_and_empty_directories() {
    let f = fixture("delim");
    for k in ["a/1", "a/2", "b/c/d", "top"] {
        put(&f, k, b"x", &PublishMode::Overwrite).unwrap();
    }
    std::fs::create_dir_all(bucket_path(&f).join("empty/deeper")).unwrap();
    let (ks, _) = keys(&f, "", Some("/"), None, 1000);
    assert_eq!(ks, ["P:a/", "P:b/", "top"], "an empty directory yields no common prefix");
    let (ks, _) = keys(&f, "b/", Some("/"), None, 1000);
    assert_eq!(ks, ["P:b/c/"]);
    let (ks, _) = keys(&f, "a", None, None, 1000);
    assert_eq!(ks, ["a/1", "a/2"]);
    // Resuming after a common prefix skips everything under it.
    let (ks, _) = keys(&f, "", Some("/"), Some("a/"), 1000);
    assert_eq!(ks, ["P:b/", "top"]);
    // A delimiter other than '/'.
    let (ks, _) = keys(&f, "", Some("1"), None, 1000);
    assert_eq!(ks, ["P:a/1", "a/2", "b/c/d", "top"]);
    let (ks, trunc) = keys(&f, "", Some("/"), None, 2);
    assert_eq!((ks, trunc), (vec!["P:a/".to_string(), "P:b/".to_string()], true));
}

#[test]
fn object_and_prefix_conflicts_are_refused() {
    for anonymous in [false, true] {
        object_and_prefix_conflicts_are_refused_with(fixture_staging("conflict", anonymous));
    }
}

fn object_and_prefix_conflicts_are_refused_with(f: Fixture) {
    put(&f, "a", b"x", &PublishMode::Overwrite).unwrap();
    assert!(matches!(put(&f, "a/b", b"x", &PublishMode::Overwrite), Err(ConnectorError::ParentIsFile(_))));
    put(&f, "d/e", b"x", &PublishMode::Overwrite).unwrap();
    assert!(matches!(put(&f, "d", b"x", &PublishMode::Overwrite), Err(ConnectorError::ExistingIsDirectory(_))));
    assert!(matches!(put(&f, "d", b"x", &PublishMode::CreateOnly), Err(ConnectorError::ExistingIsDirectory(_))));
    // A directory marker never aliases the file key.
    put(&f, "m/", b"", &PublishMode::Overwrite).unwrap();
    let b = f.store.bucket("bkt").unwrap();
    assert!(matches!(b.open_object(&ObjectKey::parse("m").unwrap()), Err(ConnectorError::NotFound(_))));
    assert!(b.open_object(&ObjectKey::parse("m/").unwrap()).is_ok());
    assert!(matches!(put(&f, "a/", b"", &PublishMode::Overwrite), Err(ConnectorError::ParentIsFile(_))));
}

#[test]
fn create_only_and_if_match_publish() {
    for anonymous in [false, true] {
        create_only_and_if_match_publish_with(fixture_staging("cond", anonymous));
    }
}

fn create_only_and_if_match_publish_with(f: Fixture) {
    put(&f, "k", b"one", &PublishMode::CreateOnly).unwrap();
    assert!(matches!(put(&f, "k", b"two", &PublishMode::CreateOnly), Err(ConnectorError::PreconditionFailed(_))));
    assert!(matches!(
        put(&f, "k", b"two", &PublishMode::IfMatch("nope".into())),
        Err(ConnectorError::PreconditionFailed(_))
    ));
    put(&f, "k", b"three", &PublishMode::IfMatch("\"etag-3\"".into())).unwrap();
    assert!(matches!(put(&f, "missing", b"x", &PublishMode::IfMatch("*".into())), Err(ConnectorError::NotFound(_))));
    let b = f.store.bucket("bkt").unwrap();
    let o = b.open_object(&ObjectKey::parse("k").unwrap()).unwrap();
    assert_eq!(o.meta.etag, "etag-5");
    // Failed publishes leave no staging file behind.
    let names: Vec<_> = std::fs::read_dir(bucket_path(&f)).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(f.journal.0.lock().unwrap().is_empty());
}

#[test]
fn concurrent_create_only_has_exactly_one_winner() {
    for anonymous in [false, true] {
        concurrent_create_only_with(Arc::new(fixture_staging("race", anonymous)));
    }
}

fn concurrent_create_only_with(f: Arc<Fixture>) {
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let f = f.clone();
            std::thread::spawn(move || {
                put(&f, "race", format!("writer-{i}").as_bytes(), &PublishMode::CreateOnly).is_ok()
            })
        })
        .collect();
    let wins = handles.into_iter().map(|h| h.join().unwrap()).filter(|w| *w).count();
    assert_eq!(wins, 1);
}

#[test]
fn symlinks_and_special_files_are_not_objects() {
    let f = fixture("links");
    let secret = f.dir.join("secret.txt");
    std::fs::write(&secret, b"outside").unwrap();
    let bp = bucket_path(&f);
    std::os::unix::fs::symlink(&secret, bp.join("link")).unwrap();
    std::os::unix::fs::symlink(&f.dir, bp.join("dirlink")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        bp.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    put(&f, "real", b"x", &PublishMode::Overwrite).unwrap();
    let b = f.store.bucket("bkt").unwrap();
    for k in ["link", "dirlink/secret.txt", "fifo"] {
        let r = b.open_object(&ObjectKey::parse(k).unwrap());
        assert!(
            matches!(r, Err(ConnectorError::NotFound(_) | ConnectorError::NotRegularFile(_))),
            "{k} must not be readable"
        );
    }
    // Writing through a symlinked directory is refused too.
    assert!(put(&f, "dirlink/new", b"x", &PublishMode::Overwrite).is_err());
    assert!(!f.dir.join("new").exists());
    let (ks, _) = keys(&f, "", None, None, 1000);
    assert_eq!(ks, ["real"]);
}

#[test]
fn foreign_files_get_derived_etags_and_stale_records_are_ignored() {
    let f = fixture("foreign");
    let bp = bucket_path(&f);
    std::fs::create_dir_all(bp.join("job")).unwrap();
    std::fs::write(bp.join("job/out.dat"), b"written by an HPC job").unwrap();
    let b = f.store.bucket("bkt").unwrap();
    let k = ObjectKey::parse("job/out.dat").unwrap();
    let o1 = b.open_object(&k).unwrap();
    assert!(!o1.meta.stored && o1.meta.etag.ends_with("-1"));
    assert_eq!(b.open_object(&k).unwrap().meta.etag, o1.meta.etag, "derived ETags are stable");
    put(&f, "k", b"abc", &PublishMode::Overwrite).unwrap();
    let k2 = ObjectKey::parse("k").unwrap();
    assert_eq!(b.open_object(&k2).unwrap().meta.etag, "etag-3");
    // An in-place edit outside Strait invalidates the stored record.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::OpenOptions::new().append(true).open(bp.join("k")).unwrap().write_all(b"d").unwrap();
    let o = b.open_object(&k2).unwrap();
    assert!(!o.meta.stored, "a stale record must not be served");
    assert_ne!(o.meta.etag, "etag-3");
}

#[test]
fn deleting_prunes_only_directories_strait_created() {
    let f = fixture("prune");
    let bp = bucket_path(&f);
    std::fs::create_dir_all(bp.join("user/made")).unwrap();
    put(&f, "user/made/x/y/obj", b"1", &PublishMode::Overwrite).unwrap();
    put(&f, "auto/deep/obj", b"1", &PublishMode::Overwrite).unwrap();
    let b = f.store.bucket("bkt").unwrap();
    b.delete_object(&ObjectKey::parse("user/made/x/y/obj").unwrap()).unwrap();
    b.delete_object(&ObjectKey::parse("auto/deep/obj").unwrap()).unwrap();
    assert!(bp.join("user/made").is_dir(), "user-created directories stay");
    assert!(!bp.join("user/made/x").exists(), "implied parents go");
    assert!(!bp.join("auto").exists());
    assert!(matches!(b.delete_object(&ObjectKey::parse("auto/deep/obj").unwrap()), Err(ConnectorError::NotFound(_))));
}

#[test]
fn abandoned_staging_is_removed_and_journaled() {
    let f = fixture("staging");
    let b = f.store.bucket("bkt").unwrap();
    let k = ObjectKey::parse("dir/obj").unwrap();
    let mut st = b.stage(&k).unwrap();
    st.file().write_all(b"partial").unwrap();
    let recorded = f.journal.0.lock().unwrap().clone();
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].exists(), "the staging file sits in the target directory");
    // The staging name is hidden from listings and readers.
    assert!(keys(&f, "", None, None, 1000).0.is_empty());
    // A crash leaves the file; start-up cleanup removes what the journal recorded.
    std::mem::forget(st);
    f.store.remove_stale_staging(&recorded[0]);
    assert!(!recorded[0].exists());
    assert!(f.journal.0.lock().unwrap().is_empty());
    // Dropping an unpublished staging file removes it at once.
    let st = b.stage(&k).unwrap();
    let p = f.journal.0.lock().unwrap()[0].clone();
    drop(st);
    assert!(!p.exists());
}

#[test]
fn unnamed_staging_leaves_no_trace_until_publish() {
    let f = fixture_staging("anon", true);
    let b = f.store.bucket("bkt").unwrap();
    let k = ObjectKey::parse("d/obj").unwrap();
    let mut st = b.stage(&k).unwrap();
    st.file().write_all(b"first").unwrap();
    // Nothing is journaled and the target directory has no entry for the staged bytes.
    assert!(f.journal.0.lock().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(bucket_path(&f).join("d")).unwrap().count(), 0);
    assert!(keys(&f, "", None, None, 1000).0.is_empty());
    let m = st.publish(ObjectMeta { etag: "e1".into(), ..Default::default() }, &PublishMode::CreateOnly).unwrap();
    assert_eq!(std::fs::read(bucket_path(&f).join("d/obj")).unwrap(), b"first");
    let o = b.open_object(&k).unwrap();
    assert!(o.meta.stored, "the record written before the link still describes the file");
    assert_eq!((o.meta.etag.as_str(), o.meta.id.ino), ("e1", m.id.ino));
    // A key that exists is staged under a name and renamed over; nothing stays behind.
    put(&f, "d/obj", b"second", &PublishMode::Overwrite).unwrap();
    assert_eq!(std::fs::read(bucket_path(&f).join("d/obj")).unwrap(), b"second");
    let names = |f: &Fixture| -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(bucket_path(f).join("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&f), ["obj"]);
    assert!(f.journal.0.lock().unwrap().is_empty());
    assert_eq!(b.open_object(&k).unwrap().meta.etag, "etag-6");
    // Staged unnamed for a new key that another writer creates before publish: an overwrite
    // links under a journaled name and renames over it, a create-only write fails.
    let k2 = ObjectKey::parse("d/late").unwrap();
    let mut st = b.stage(&k2).unwrap();
    st.file().write_all(b"mine").unwrap();
    let mut st_c = b.stage(&k2).unwrap();
    st_c.file().write_all(b"create-only").unwrap();
    put(&f, "d/late", b"theirs", &PublishMode::Overwrite).unwrap();
    st.publish(ObjectMeta { etag: "mine".into(), ..Default::default() }, &PublishMode::Overwrite).unwrap();
    assert_eq!(std::fs::read(bucket_path(&f).join("d/late")).unwrap(), b"mine");
    assert_eq!(b.open_object(&k2).unwrap().meta.etag, "mine");
    let r = st_c.publish(ObjectMeta { etag: "c".into(), ..Default::default() }, &PublishMode::CreateOnly);
    assert!(matches!(r, Err(ConnectorError::PreconditionFailed(_))), "{:?}", r.err());
    assert_eq!(std::fs::read(bucket_path(&f).join("d/late")).unwrap(), b"mine");
    assert_eq!(names(&f), ["late", "obj"]);
    assert!(f.journal.0.lock().unwrap().is_empty());
    // Dropped unpublished: the kernel frees the file, no name appears.
    let mut st = b.stage(&ObjectKey::parse("d/never").unwrap()).unwrap();
    st.file().write_all(b"never").unwrap();
    drop(st);
    assert_eq!(std::fs::read(bucket_path(&f).join("d/obj")).unwrap(), b"second");
    assert_eq!(names(&f), ["late", "obj"]);
}

#[test]
fn unnamed_staging_survives_its_directory_being_pruned() {
    // An unnamed staging file does not keep its implied parent from looking empty: a delete of
    // the directory's last object prunes it in between, and publish makes it again.
    let f = fixture_staging("anonprune", true);
    let b = f.store.bucket("bkt").unwrap();
    put(&f, "p/q/other", b"x", &PublishMode::Overwrite).unwrap();
    let k = ObjectKey::parse("p/q/obj").unwrap();
    let mut st = b.stage(&k).unwrap();
    st.file().write_all(b"payload").unwrap();
    b.delete_object(&ObjectKey::parse("p/q/other").unwrap()).unwrap();
    assert!(!bucket_path(&f).join("p").exists(), "the emptied implied parents were pruned");
    st.publish(ObjectMeta { etag: "e".into(), ..Default::default() }, &PublishMode::Overwrite).unwrap();
    assert_eq!(std::fs::read(bucket_path(&f).join("p/q/obj")).unwrap(), b"payload");
    assert_eq!(keys(&f, "", None, None, 10).0, ["p/q/obj"]);
    // The remade parents are implied ones again: deleting the object prunes them.
    b.delete_object(&k).unwrap();
    assert!(!bucket_path(&f).join("p").exists());
}

#[test]
fn buckets_are_directories() {
    let f = fixture("buckets");
    assert!(matches!(f.store.create_bucket("bkt", "0", None), Err(ConnectorError::AlreadyExists(_))));
    put(&f, "x", b"1", &PublishMode::Overwrite).unwrap();
    assert!(matches!(f.store.delete_bucket("bkt"), Err(ConnectorError::NotEmpty(_))));
    f.store.bucket("bkt").unwrap().delete_object(&ObjectKey::parse("x").unwrap()).unwrap();
    f.store.delete_bucket("bkt").unwrap();
    assert!(matches!(f.store.bucket("bkt"), Err(ConnectorError::NoSuchBucket(_))));
    assert!(f.store.list_buckets(|_| true).unwrap().is_empty());
}

#[test]
fn metadata_too_large_for_xattrs_goes_to_the_side_table() {
    let f = fixture("bigmeta");
    let b = f.store.bucket("bkt").unwrap();
    let k = ObjectKey::parse("big").unwrap();
    let mut meta = ObjectMeta { etag: "e".into(), ..Default::default() };
    for i in 0..10 {
        meta.tags.push((format!("{i}{}", "k".repeat(127)), "v".repeat(256)));
    }
    meta.user.insert("m".into(), "x".repeat(2000));
    let mut st = b.stage(&k).unwrap();
    st.file().write_all(b"payload").unwrap();
    st.publish(meta.clone(), &PublishMode::Overwrite).unwrap();
    assert_eq!(f.journal.1.lock().unwrap().len(), 1, "the record went to the side table");
    let o = b.open_object(&k).unwrap();
    assert_eq!((o.meta.tags.len(), o.meta.user["m"].len(), o.meta.etag.as_str()), (10, 2000, "e"));
    // Listing reads the same record.
    let (ks, _) = keys(&f, "", None, None, 10);
    assert_eq!(ks, ["big"]);
    // An in-place edit outside Strait makes both the stub and the side record stale.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::OpenOptions::new().append(true).open(bucket_path(&f).join("big")).unwrap().write_all(b"!").unwrap();
    assert!(!b.open_object(&k).unwrap().meta.stored);
    // Deleting through Strait drops the side record.
    let k2 = ObjectKey::parse("big2").unwrap();
    let mut st = b.stage(&k2).unwrap();
    st.file().write_all(b"p").unwrap();
    st.publish(meta, &PublishMode::Overwrite).unwrap();
    assert_eq!(f.journal.1.lock().unwrap().len(), 2);
    b.delete_object(&k2).unwrap();
    assert_eq!(f.journal.1.lock().unwrap().len(), 1);
}

/// A bucket's open directory is reused across calls, but a directory removed (or removed and
/// made again) directly on the file system is seen at the next call, and one renamed away and
/// replaced is seen once the reuse window has passed.
#[test]
fn reused_bucket_directory_follows_the_file_system() {
    let f = fixture("dirreuse");
    put(&f, "a", b"one", &PublishMode::Overwrite).unwrap();
    let first = f.store.bucket("bkt").unwrap();
    assert!(first.open_object(&ObjectKey::parse("a").unwrap()).is_ok());
    drop(first);

    // Removed and made again: the old directory has no link left.
    std::fs::remove_dir_all(bucket_path(&f)).unwrap();
    assert!(matches!(f.store.bucket("bkt"), Err(ConnectorError::NoSuchBucket(_))));
    std::fs::create_dir(bucket_path(&f)).unwrap();
    std::fs::write(bucket_path(&f).join("b"), b"two").unwrap();
    let b = f.store.bucket("bkt").unwrap();
    assert!(b.open_object(&ObjectKey::parse("b").unwrap()).is_ok());
    assert!(b.open_object(&ObjectKey::parse("a").unwrap()).is_err());

    // Renamed away and replaced: the old directory still has its link, so it may be served
    // for the reuse window (1 s), and not after.
    let away = f.dir.join("away");
    std::fs::rename(bucket_path(&f), &away).unwrap();
    std::fs::create_dir(bucket_path(&f)).unwrap();
    std::fs::write(bucket_path(&f).join("c"), b"three").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = f.store.bucket("bkt").unwrap();
    assert!(b.open_object(&ObjectKey::parse("c").unwrap()).is_ok());
    assert!(b.open_object(&ObjectKey::parse("b").unwrap()).is_err());

    // Deleted through the store: forgotten at once.
    std::fs::remove_file(bucket_path(&f).join("c")).unwrap();
    f.store.delete_bucket("bkt").unwrap();
    assert!(matches!(f.store.bucket("bkt"), Err(ConnectorError::NoSuchBucket(_))));
}
