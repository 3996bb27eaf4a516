//! `apply_al` on metadata a real kernel left behind after a power loss, compared byte for byte
//! with drbdmeta's result on the same input (drbd-utils 9.22, the oracle).
//!
//! `tests/data/v0[89]-unclean.md` are the metadata tails (bitmap, activity log, superblock: the
//! last 40 KiB) of the lab's 16 MiB disk after SIGKILL of a DRBD 8.4 / DRBD 9.3.3 Primary that
//! had written into extents 0, 1 and 3; `v0[89]-drbdmeta-applied.md` are drbdmeta's results
//! (both captured by `tests/tests/drbd_md.rs` with `DRBD_MD_CAPTURE`). The other cases derive
//! their input from those in [`case`]'s callers; their expected results `*.drbdmeta.md` were made
//! by drbdmeta: `DRBD_MD_ORACLE=1 cargo test -p drbd-md --test captured` (needs `drbdmeta` in
//! PATH) rewrites them, and drbdmeta refusing leaves none (then `apply_al` must refuse too and
//! write nothing). A case whose result equals its input is stored as `*.unchanged`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use drbd_md::{apply_al, flags, AlProblem, ApplyAlReport, MdError, Transaction};

/// The lab's disk size.
const DEV: u64 = 16 << 20;
/// The metadata tail kept in the data files: 40 KiB.
const TAIL: usize = 40960;
const SB: usize = TAIL - 4096;
const AL: usize = SB - 32768;

fn data_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(data_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A sparse device-sized image with `tail` at its end.
fn image(dir: &Path, name: &str, tail: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let f = File::create(&p).unwrap();
    f.set_len(DEV).unwrap();
    f.write_all_at(tail, DEV - tail.len() as u64).unwrap();
    p
}

/// The last `len` bytes of the image (checking that nothing before them was written).
fn read_tail(p: &Path, len: usize) -> Vec<u8> {
    let f = File::open(p).unwrap();
    assert_eq!(f.metadata().unwrap().len(), DEV, "device size changed");
    let mut t = vec![0; len];
    f.read_exact_at(&mut t, DEV - len as u64).unwrap();
    let mut head = vec![0; (DEV as usize) - len];
    f.read_exact_at(&mut head, 0).unwrap();
    assert!(head.iter().all(|&b| b == 0), "data area written");
    t
}

fn be32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// drbdmeta's result for `input` (`None`: drbdmeta refused), regenerated with DRBD_MD_ORACLE.
fn expected(name: &str, input: &[u8]) -> Option<Vec<u8>> {
    let (out, same) = (format!("{name}.drbdmeta.md"), format!("{name}.unchanged"));
    if std::env::var_os("DRBD_MD_ORACLE").is_some() {
        let dir = tempfile::tempdir().unwrap();
        let img = image(dir.path(), "oracle.img", input);
        let format = if get32(input, input.len() - 4096 + 60) == drbd_md::MAGIC_09 {
            "v09"
        } else {
            "v08"
        };
        let o = std::process::Command::new("drbdmeta")
            .args(["--force", "0", format])
            .arg(&img)
            .args(["internal", "apply-al"])
            .output()
            .expect("drbdmeta");
        eprintln!(
            "{name}: drbdmeta {}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        let _ = std::fs::remove_file(data_path(&out));
        let _ = std::fs::remove_file(data_path(&same));
        if o.status.success() {
            let t = read_tail(&img, input.len());
            if t == input {
                std::fs::write(data_path(&same), b"").unwrap();
            } else {
                std::fs::write(data_path(&out), t).unwrap();
            }
        } else {
            assert_eq!(
                read_tail(&img, input.len()),
                input,
                "drbdmeta failed but wrote"
            );
        }
    }
    if data_path(&same).exists() {
        return Some(input.to_vec());
    }
    data_path(&out).exists().then(|| data(&out))
}

/// Runs `apply_al` on an image of `input` and compares with `want` (None: must fail unchanged).
fn check(input: &[u8], want: Option<&[u8]>) -> Result<ApplyAlReport, MdError> {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "native.img", input);
    let r = apply_al(&img);
    let got = read_tail(&img, input.len());
    match want {
        Some(want) => {
            let r = r
                .as_ref()
                .expect("apply_al failed where drbdmeta succeeded");
            if let Some(at) = got.iter().zip(want).position(|(g, w)| g != w) {
                panic!("differs from drbdmeta at tail byte {at} (superblock at {SB}, AL at {AL}): {r:?}");
            }
        }
        None => {
            assert!(r.is_err(), "drbdmeta refused, apply_al did not: {r:?}");
            assert_eq!(got, input, "failed but wrote");
        }
    }
    r
}

/// A derived case: `input` against drbdmeta's stored result.
fn case(name: &str, input: &[u8]) -> Result<ApplyAlReport, MdError> {
    let want = expected(name, input);
    check(input, want.as_deref())
}

#[test]
fn v08_power_loss_matches_drbdmeta() {
    let r = check(
        &data("v08-unclean.md"),
        Some(&data("v08-drbdmeta-applied.md")),
    )
    .unwrap();
    assert_eq!(r.hot_extents, [0, 1, 3]);
    assert!(r.primary_ind && r.applied && r.al_reinitialized && r.superblock_written);
    // 3 extents of 1024 bits, all newly set: drbdmeta's "Marked additional 12 MB".
    assert_eq!((r.additional_bits, r.additional_kib()), (3072, 12288));
    assert_eq!(r.corrupt_transactions, 0);
}

#[test]
fn v09_power_loss_matches_drbdmeta() {
    let r = check(
        &data("v09-unclean.md"),
        Some(&data("v09-drbdmeta-applied.md")),
    )
    .unwrap();
    assert_eq!(r.format, drbd_md::Format::V09);
    assert_eq!(r.hot_extents, [0, 1, 3]);
    assert_eq!(r.additional_bits, 3072);
}

#[test]
fn applied_metadata_is_left_as_drbdmeta_leaves_it() {
    for v in ["v08", "v09"] {
        let applied = data(&format!("{v}-drbdmeta-applied.md"));
        let r = case(&format!("{v}-applied-again"), &applied).unwrap();
        assert!(
            r.was_clean && !r.applied && !r.al_reinitialized,
            "{v}: {r:?}"
        );
        // v08: nothing written; v09: drbdmeta rewrites the superblock (same bytes).
        assert_eq!(r.superblock_written, v == "v09", "{v}: {r:?}");
    }
}

#[test]
fn secondary_crash_reinitializes_the_log_without_applying() {
    let mut t = data("v08-unclean.md");
    let f = get32(&t, SB + 56);
    be32(&mut t, SB + 56, f & !flags::PRIMARY_IND);
    let r = case("v08-secondary", &t).unwrap();
    assert!(!r.primary_ind && !r.applied && r.al_reinitialized && r.superblock_written);
    assert_eq!(r.hot_extents, [0, 1, 3], "replayed, not applied");
    assert_eq!(r.additional_bits, 0);
}

/// The block of the newest valid update transaction of the (unstriped) log in `tail`.
fn newest_update(tail: &[u8]) -> usize {
    (0..8)
        .filter_map(|i| {
            let t = Transaction::decode(&tail[AL + 4096 * i..]).ok()?;
            (t.transaction_type == drbd_md::AL_TR_UPDATE).then_some((t.tr_number, i))
        })
        .max()
        .unwrap()
        .1
}

#[test]
fn torn_newest_transaction_replays_the_older_ones() {
    for v in ["v08", "v09"] {
        let mut t = data(&format!("{v}-unclean.md"));
        let i = newest_update(&t);
        t[AL + 4096 * i + 200] ^= 0x40; // a torn write: CRC32C no longer matches
        let r = case(&format!("{v}-torn-newest"), &t).unwrap();
        assert_eq!(r.corrupt_transactions, 1, "{v}: {r:?}");
        assert!(r.applied, "{v}: {r:?}");
    }
}

#[test]
fn unusable_log_is_refused_for_a_primary_and_reinitialized_otherwise() {
    let mut t = data("v08-unclean.md");
    t[AL..SB].fill(0);
    match case("v08-no-log-primary", &t) {
        Err(MdError::ActivityLog {
            offset,
            problem: AlProblem::NoValidTransaction { slots: 8 },
        }) => assert_eq!(offset, DEV - TAIL as u64 + AL as u64),
        other => panic!("{other:?}"),
    }
    let f = get32(&t, SB + 56);
    be32(&mut t, SB + 56, f & !flags::PRIMARY_IND);
    let r = case("v08-no-log-secondary", &t).unwrap();
    assert_eq!(
        r.al_problem_ignored,
        Some(AlProblem::NoValidTransaction { slots: 8 })
    );
    assert!(r.al_reinitialized && r.superblock_written && !r.applied);
}

#[test]
fn v09_three_peer_slots_get_every_slot_marked() {
    let mut t = data("v09-unclean.md");
    be32(&mut t, SB + 88, 3); // bm_max_peers: the bitmap of 16 MiB still fits 4 KiB
    t[100..700].fill(0x0f); // some bits already set
    let r = case("v09-three-peers", &t).unwrap();
    // Extents 0, 1, 3 for 3 slots: 3 * 3 * 1024 bits, minus the 4 set bits of each byte in
    // 100..384 (extent 0: bytes 0..384), none in extent 1 (384..768) beyond 700.
    let preset = (100..384).count() as u64 * 4 + (384..700).count() as u64 * 4;
    assert_eq!(r.additional_bits, 9 * 1024 - preset);
}

/// 31 slots: the bitmap grows to 16 KiB (the superblock's offsets moved to match, the size
/// clipped), and extents of 3968 bytes straddle 4 KiB blocks.
#[test]
fn v09_thirty_one_peer_slots_straddle_bitmap_blocks() {
    let real = data("v09-unclean.md");
    let mut t = vec![0u8; 16384 - 4096];
    t.extend_from_slice(&real);
    let sb = t.len() - 4096;
    be32(&mut t, sb + 88, 31); // bm_max_peers
    be32(&mut t, sb + 64, 104); // md_size_sect: 32 bitmap + 64 AL + 8
    be32(&mut t, sb + 76, -96i32 as u32); // bm_offset
    for i in 1..31 {
        be32(&mut t, sb + 112 + 32 * i + 20, -1i32 as u32); // bitmap_index: unused
    }
    t[5000..5100].fill(0xff); // some bits already set (extent 1)
    let r = case("v09-thirty-one-peers", &t).unwrap();
    assert_eq!(r.layout.bm_bytes, 16384);
    assert_eq!(r.additional_bits, 3 * 31 * 1024 - 100 * 8);
}

#[test]
fn oversized_effective_size_is_clipped_when_written() {
    let mut t = data("v08-unclean.md");
    t[SB..SB + 8].copy_from_slice(&40_000u64.to_be_bytes()); // > 32688 usable sectors
    let r = case("v08-clipped", &t).unwrap();
    assert_eq!(r.layout.effective_size, 32688);
}

#[test]
fn pre_84_stripe_fields_read_as_one_stripe_of_eight() {
    let mut t = data("v08-unclean.md");
    be32(&mut t, SB + 88, 0);
    be32(&mut t, SB + 92, 0);
    let r = case("v08-no-stripes", &t).unwrap();
    assert!(r.applied);
}

#[test]
fn tmpfs_image_without_o_direct() {
    let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
        return; // no tmpfs here; the O_DIRECT path is covered above
    };
    let img = image(dir.path(), "shm.img", &data("v08-unclean.md"));
    apply_al(&img).unwrap();
    assert_eq!(read_tail(&img, TAIL), data("v08-drbdmeta-applied.md"));
}

#[test]
fn errors_name_the_path_offset_and_field() {
    let dir = tempfile::tempdir().unwrap();
    match apply_al(&dir.path().join("missing")) {
        Err(MdError::Open { path, .. }) => assert!(path.ends_with("missing")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        apply_al(dir.path()),
        Err(MdError::NotADevice { .. })
    ));
    let small = dir.path().join("small");
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&small)
        .unwrap()
        .set_len(4096)
        .unwrap();
    assert!(matches!(
        apply_al(&small),
        Err(MdError::TooSmall { size: 4096, .. })
    ));
    let empty = image(dir.path(), "empty.img", &[0; 4096]);
    match apply_al(&empty) {
        Err(e @ MdError::NoMetadata { offset, magic: 0 }) => {
            assert_eq!(offset, DEV - 4096);
            assert!(
                e.to_string().contains(&format!("byte {}", DEV - 4096)),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut t = data("v08-unclean.md");
    be32(&mut t, SB + 68, -72i32 as u32);
    let bad = image(dir.path(), "bad.img", &t);
    match apply_al(&bad) {
        Err(MdError::Invalid {
            offset,
            field: "al_offset",
            ..
        }) => {
            assert_eq!(offset, DEV - 4096 + 68)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(read_tail(&bad, TAIL), t, "nothing written on error");
}
